package e2e

import (
	"context"
	"errors"
	"fmt"
	"github.com/clusterdns/clusterdns/internal/testbin"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The TTLs the tests start the server with. They differ so that a server
// that mixes them up is caught.
const (
	clusterTTL  = 5
	negativeTTL = 7
)

// readyTimeout bounds how long a started server may take to answer.
const readyTimeout = 30 * time.Second

// server is one running clusterdns process.
type server struct {
	host  string
	port  int
	dir   string // its zones folder ("" when it serves the embedded example)
	netns string // the network namespace it runs in ("" for the test's own)
	args  []string

	*testbin.Process // once started
}

func (s *server) addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

// stderr returns everything the server logged so far.
func (s *server) stderr() string { return s.Out.String() }

// logOffset marks the current end of the log, for logSince.
func (s *server) logOffset() int { return s.Out.Len() }

// logSince returns what the server logged after off.
func (s *server) logSince(off int) string { return s.Out.Since(off) }

// launchOpts says how to start a server.
type launchOpts struct {
	dir   string // zones folder, for bookkeeping
	netns string // start inside this network namespace, listening on 127.0.0.1:53
	host  string // inside netns: the address to probe instead of 127.0.0.1
	// args returns the command line (without the binary) and extra
	// environment for a server that must listen on 127.0.0.1:port.
	args func(port int) (args, env []string)
}

// copyZones copies the repository's example cluster (zones/*.yaml and
// *.zone) into a new temporary folder and returns it.
func copyZones(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(repoRoot, "zones")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".zone") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("no *.yaml or *.zone files in %s", src)
	}
	return dir
}

// noForwarding turns forwarding off: without it the server forwards names
// outside its zones to the nameservers of /etc/resolv.conf, and the tests
// must not send anything beyond loopback (nor, inside a namespace whose
// resolv.conf names the server itself, loop back to it).
const noForwarding = "--upstreams="

// standardArgs is the command line of a test server on 127.0.0.1:port
// serving dir, forwarding nothing.
func standardArgs(dir string, port int) []string {
	return []string{
		"--listen", fmt.Sprintf("127.0.0.1:%d", port),
		noForwarding,
		"--zones-dir", dir,
		"--domains", "cluster.local",
		"--ttl", strconv.Itoa(clusterTTL),
		"--negative-ttl", strconv.Itoa(negativeTTL),
		"--log-level", "debug",
		"--log-format", "text",
	}
}

// startServer starts the server on a free loopback port serving dir, with
// standardArgs plus extra, and waits until it answers over UDP and TCP.
// It is killed when the test ends.
func startServer(t *testing.T, dir string, extra ...string) *server {
	t.Helper()
	return launch(t, launchOpts{dir: dir, args: func(port int) ([]string, []string) {
		return append(standardArgs(dir, port), extra...), nil
	}})
}

// launch starts a server as o says and waits until it answers. A port taken
// by someone else between freePort and the server's bind is retried with
// another port.
func launch(t *testing.T, o launchOpts) *server {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := 53
		if o.netns == "" {
			port = freePort(t)
		}
		args, env := o.args(port)
		s := &server{host: "127.0.0.1", port: port, dir: o.dir, netns: o.netns, args: args}
		if o.host != "" {
			s.host = o.host
		}
		if err := s.start(t, env); err != nil {
			t.Fatalf("start clusterdns: %v", err)
		}
		err := s.waitReady(readyTimeout)
		if err == nil && o.netns == "" {
			// The server binds with SO_REUSEPORT, so a second process of
			// the same user can bind the same port without an error and
			// take part of the queries: make sure nobody else is there.
			if n, perr := s.foreignSockets(); perr != nil {
				t.Logf("cannot check that port %d is the server's alone: %v", port, perr)
			} else if n > 0 {
				err = fmt.Errorf("%d socket(s) of another process are bound to 127.0.0.1:%d too (SO_REUSEPORT)", n, port)
				s.Stop(0)
				lastErr = err
				t.Logf("%v; retrying with another port", err)
				continue
			}
		}
		if err == nil {
			return s
		}
		s.Stop(0)
		lastErr = err
		if o.netns != "" || !strings.Contains(strings.ToLower(s.stderr()), "address already in use") {
			break
		}
		t.Logf("port %d was taken meanwhile, retrying with another one", port)
	}
	t.Fatalf("clusterdns did not come up: %v", lastErr)
	return nil
}

// freePort returns a port free on 127.0.0.1 for both UDP and TCP.
var freePort = testbin.FreeDNSPort

func (s *server) start(t *testing.T, env []string) error {
	p, err := testbin.StartProcess(s.netns, serverBin, s.args, env)
	if err != nil {
		return err
	}
	s.Process = p
	t.Logf("started clusterdns pid %d: %s", p.Cmd.Process.Pid, strings.Join(p.Cmd.Args, " "))
	t.Cleanup(func() {
		s.Stop(0)
		if t.Failed() {
			t.Logf("clusterdns %s stderr:\n%s", strings.Join(s.args, " "), tail(s.stderr(), 64<<10))
		}
	})
	return nil
}

// foreignSockets counts the UDP sockets and TCP listeners bound to the
// server's address that belong to another process (Linux /proc).
func (s *server) foreignSockets() (int, error) {
	ours := map[string]bool{}
	fdDir := fmt.Sprintf("/proc/%d/fd", s.Cmd.Process.Pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return 0, err
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			ours[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	ip := net.ParseIP(s.host).To4()
	if ip == nil {
		return 0, fmt.Errorf("not an IPv4 address: %s", s.host)
	}
	// /proc/net/{udp,tcp} print the address as a little-endian hex word.
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], s.port)
	foreign := 0
	for _, f := range []struct{ file, state string }{{"/proc/net/udp", ""}, {"/proc/net/tcp", "0A"}} {
		data, err := os.ReadFile(f.file)
		if err != nil {
			return 0, err
		}
		for _, l := range strings.Split(string(data), "\n")[1:] {
			fl := strings.Fields(l)
			if len(fl) < 10 || fl[1] != local || (f.state != "" && fl[3] != f.state) || fl[9] == "0" {
				continue
			}
			if !ours[fl[9]] {
				foreign++
			}
		}
	}
	return foreign, nil
}

// exited reports whether the server process has ended.
func (s *server) exited() bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

// waitReady polls the server with an SOA query for cluster.local over UDP
// and TCP until both answer NOERROR, the process exits, or timeout passes.
func (s *server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-s.Done():
			return fmt.Errorf("clusterdns exited before answering (%v); output:\n%s", s.Err(), tail(s.stderr(), 16<<10))
		default:
		}
		last = s.probe()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer after %v: %v; output:\n%s", timeout, last, tail(s.stderr(), 16<<10))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *server) probe() error {
	if s.netns != "" {
		// Only a process inside the namespace can reach it.
		for _, tr := range []string{"+notcp", "+tcp"} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			out, err := exec.CommandContext(ctx, "ip", "netns", "exec", s.netns,
				"dig", "@"+s.host, "-p", strconv.Itoa(s.port), "+time=1", "+tries=1", "+short", tr,
				"cluster.local", "SOA").CombinedOutput()
			cancel()
			if err != nil || len(strings.TrimSpace(string(out))) == 0 {
				return fmt.Errorf("dig %s in %s: %v: %s", tr, s.netns, err, out)
			}
		}
		return nil
	}
	for _, proto := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: proto, Timeout: time.Second}
		m := new(dns.Msg).SetQuestion("cluster.local.", dns.TypeSOA)
		r, _, err := c.Exchange(m, s.addr())
		if err != nil {
			return fmt.Errorf("%s: %w", proto, err)
		}
		if r.Rcode != dns.RcodeSuccess {
			return fmt.Errorf("%s: SOA cluster.local: %s", proto, dns.RcodeToString[r.Rcode])
		}
	}
	return nil
}

// eventually calls f until it reports done or timeout passes, and fails the
// test with f's last description of the state then. It returns how long it
// took.
func eventually(t *testing.T, timeout time.Duration, what string, f func() (done bool, state string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		done, state := f()
		if done {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v; last state: %s", what, timeout, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runCmd runs a command with a deadline and returns its combined output and
// exit code (-1 when it did not run or was killed).
func runCmd(timeout time.Duration, name string, args ...string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out testbin.LogBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return out.String(), -1, fmt.Errorf("%s %s: timed out after %v", name, strings.Join(args, " "), timeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode(), nil
	}
	if err != nil {
		return out.String(), -1, err
	}
	return out.String(), 0, nil
}
