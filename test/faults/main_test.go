package faults

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/clusterdns/clusterdns/internal/testbin"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var (
	// repoRoot is the module's root folder.
	repoRoot string
	// serverBin is ./cmd/clusterdns, built once by TestMain.
	serverBin string
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(clientEnv); spec != "" {
		// The test binary run as a DNS client inside a network namespace.
		os.Exit(clientMain(spec))
	}
	flag.Parse()
	if testing.Short() {
		fmt.Println("faults: skipped in -short mode (they build and start the server)")
		os.Exit(0)
	}
	root, err := testbin.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	repoRoot = root
	bin, cleanup, err := testbin.BuildServer(repoRoot, "clusterdns-faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	serverBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// logBuffer collects a process's output.
type logBuffer = testbin.LogBuffer

// proc is a clusterdns the test started, on addr (inside netns when set).
type proc struct {
	*testbin.Process
	addr  string // DNS host:port
	netns string
}

// freePort returns a port free on 127.0.0.1 for both UDP and TCP.
var freePort = testbin.FreeDNSPort

// startServer starts clusterdns on a free loopback port with args (which
// must turn forwarding off or point it at a loopback upstream) and waits
// until probe answers. The health and metrics endpoints are off unless
// args set them.
func startServer(t testing.TB, probe string, args ...string) *proc {
	t.Helper()
	for attempt := 0; ; attempt++ {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		p := launch(t, "", addr, append([]string{"--listen", addr, "--health-listen=", "--metrics-listen="}, args...))
		err := p.waitReady(probe, 30*time.Second)
		if err == nil {
			return p
		}
		p.Stop(0)
		if attempt < 2 && strings.Contains(p.Out.String(), "address already in use") {
			continue
		}
		t.Fatalf("clusterdns did not come up: %v\n%s", err, p.Out.String())
	}
}

// launch starts the binary (inside netns when set) without waiting.
func launch(t testing.TB, netns, addr string, args []string) *proc {
	t.Helper()
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--upstreams") }) {
		t.Fatal("test servers must set --upstreams (off, or a loopback server of the test)")
	}
	sp, err := testbin.StartProcess(netns, serverBin, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{Process: sp, addr: addr, netns: netns}
	t.Cleanup(func() {
		p.Stop(0)
		if t.Failed() {
			out := p.Out.String()
			if len(out) > 32<<10 {
				out = "[...]\n" + out[len(out)-32<<10:]
			}
			t.Logf("clusterdns %s log:\n%s", strings.Join(args, " "), out)
		}
	})
	return p
}

func (p *proc) waitReady(probe string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.Done():
			return errors.New("exited")
		default:
		}
		r, err := p.ask(probe, dns.TypeA, "udp")
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to %s within %s: %v %v", probe, timeout, r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ask queries the server (from the test's namespace) over netw.
func (p *proc) ask(name string, qtype uint16, netw string) (*dns.Msg, error) {
	c := &dns.Client{Net: netw, Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := c.Exchange(m, p.addr)
	return r, err
}

// mustAsk queries and fails the test without an answer.
func (p *proc) mustAsk(t testing.TB, name string, qtype uint16) *dns.Msg {
	t.Helper()
	r, err := p.ask(name, qtype, "udp")
	if err != nil {
		t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

// runCmd runs a command with a timeout and returns its combined output.
func runCmd(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// copyZones copies the example cluster (zones/*.yaml, *.zone) into a new
// folder and returns it.
func copyZones(t testing.TB, dst string) {
	t.Helper()
	src := filepath.Join(repoRoot, "zones")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); e.IsDir() || (ext != ".yaml" && ext != ".zone") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
