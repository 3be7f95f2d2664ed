package netnstest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterdns/clusterdns/internal/testbin"
)

// Do runs fn on a goroutine whose OS thread has entered the network
// namespace ns (a name made by `ip netns add`, as Topology's), and returns
// its error. Sockets that fn creates belong to ns and keep working from any
// goroutine afterwards; goroutines that fn starts do not run in ns. The
// thread goes back to the host's namespace after fn, or, when that fails,
// dies with the goroutine.
func Do(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("network namespace %s: %w", ns, err)
			return
		}
		err = unix.Setns(int(target.Fd()), unix.CLONE_NEWNET)
		target.Close()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", ns, err)
			return
		}
		ferr := fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: the locked thread exits with this goroutine
		errc <- ferr
	}()
	return <-errc
}

// DialContext dials from inside namespace ns (for http.Transport.DialContext
// and the like): the socket is created and connected on a thread in ns.
func DialContext(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := Do(ns, func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// HTTPClient returns an HTTP client whose connections start in namespace
// ns, e.g. to scrape a metrics endpoint that listens on ns's 127.0.0.1.
func HTTPClient(ns string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: DialContext(ns), DisableKeepAlives: true}}
}

// Relay makes the host's TCP address to (e.g. an API server on the host's
// 127.0.0.1) reachable from inside namespace ns at listen (e.g.
// "127.0.0.1:6443"): a listener created in ns whose connections are
// relayed, by this process, to a connection dialed in the host's
// namespace. It returns the address it listens on and stops when the test
// ends. No veth or route is needed, and nothing listens on the host.
func (tp *Topology) Relay(ns, listen, to string) string {
	tp.t.Helper()
	var ln net.Listener
	if err := Do(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", listen)
		return err
	}); err != nil {
		tp.t.Fatalf("relay listener in %s: %v", ns, err)
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		wg    sync.WaitGroup
	)
	track := func(c net.Conn, add bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil {
			return false
		}
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
		return true
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer in.Close()
				out, err := net.DialTimeout("tcp", to, 5*time.Second)
				if err != nil {
					return
				}
				defer out.Close()
				if !track(in, true) || !track(out, true) {
					return
				}
				defer track(in, false)
				defer track(out, false)
				done := make(chan struct{}, 2)
				pipe := func(dst, src net.Conn) {
					io.Copy(dst, src)
					if tc, ok := dst.(*net.TCPConn); ok {
						tc.CloseWrite()
					}
					done <- struct{}{}
				}
				go pipe(out, in)
				go pipe(in, out)
				<-done
				<-done
			}()
		}
	}()
	tp.t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// Memory returns the process's resident set size and its peak (VmRSS and
// VmHWM of /proc/<pid>/status) in bytes. The pid is the command's own:
// `ip netns exec` execs it.
func (p *Process) Memory() (rss, peak int64, err error) {
	m, err := testbin.ProcMemory(p.Cmd.Process.Pid)
	return m.RSS, m.Peak, err
}
