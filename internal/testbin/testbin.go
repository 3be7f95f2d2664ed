// Package testbin is what the process-level test packages (test/e2e,
// test/faults, test/kube) share: the repository's root, the server built
// once per test binary, a clean environment for it, and a buffer for its
// output. Test code calls it; nothing here is used by the product.
package testbin

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ModulePath is the module whose go.mod marks the repository root.
const ModulePath = "github.com/clusterdns/clusterdns"

// RepoRoot walks up from the working folder to this module's go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "module" && f[1] == ModulePath {
					return dir, nil
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working folder", ModulePath)
		}
		dir = parent
	}
}

// BuildServer builds ./cmd/clusterdns of the repository at root into a new
// temporary folder named after prefix. It returns the binary and a function
// that removes the folder; it blocks for the build (seconds to a minute).
func BuildServer(root, prefix string) (bin string, cleanup func(), err error) {
	tmp, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	bin = filepath.Join(tmp, "clusterdns")
	build := exec.Command("go", "build", "-o", bin, "./cmd/clusterdns")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("go build ./cmd/clusterdns: %w\n%s", err, out)
	}
	return bin, cleanup, nil
}

// CleanEnv is the environment for a server under test: without CLUSTERDNS_*
// (the tests pass flags) and without what would make `source: auto` pick
// the Kubernetes API (KUBECONFIG, KUBERNETES_SERVICE_*, as in a CI pod).
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLUSTERDNS_") && !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "KUBERNETES_SERVICE_") {
			env = append(env, kv)
		}
	}
	return env
}

// LogBuffer collects a process's output; safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer (the process's stdout and stderr).
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Len returns how many bytes were written.
func (b *LogBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// Since returns what was written after the first off bytes.
func (b *LogBuffer) Since(off int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if off > len(s) {
		return ""
	}
	return s[off:]
}

// FreeDNSPort returns a port that was free on 127.0.0.1 for both UDP and
// TCP (a DNS server binds both); it fails the test when none is found.
func FreeDNSPort(t testing.TB) int {
	t.Helper()
	for range 50 {
		u, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP on 127.0.0.1")
	return 0
}

// WaitFor polls ok every 5 ms until it holds, and fails the test when it
// does not within timeout: a test waits for a condition, never a sleep.
func WaitFor(t testing.TB, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
