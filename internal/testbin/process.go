package testbin

import (
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is a program a test started (StartProcess): its output, its
// exit, and Stop. Its methods are safe for concurrent use.
type Process struct {
	Cmd  *exec.Cmd
	Out  *LogBuffer // stdout and stderr together
	done chan struct{}
	err  error
	stop sync.Once
}

// StartProcess starts name with args, the environment CleanEnv plus env
// and its output in Out, inside network namespace netns when it is not
// empty (through `ip netns exec`, which execs the program itself, so the
// process is the program). The process is killed if the test process
// dies. Nothing waits for it to be ready.
func StartProcess(netns, name string, args, env []string) (*Process, error) {
	if netns != "" {
		name, args = "ip", append([]string{"netns", "exec", netns, name}, args...)
	}
	p := &Process{Cmd: exec.Command(name, args...), Out: &LogBuffer{}, done: make(chan struct{})}
	p.Cmd.Env = append(CleanEnv(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process exited (nil: status 0); read it after Done.
func (p *Process) Err() error { return p.err }

// Stop ends the process, once: SIGTERM and up to grace to exit when grace
// is positive, then SIGKILL; it waits up to 10 s for the exit. It returns
// at once when the process has already exited.
func (p *Process) Stop(grace time.Duration) {
	p.stop.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		if grace > 0 {
			_ = p.Cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
				return
			case <-time.After(grace):
			}
		}
		_ = p.Cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	})
}
