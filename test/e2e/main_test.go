package e2e

import (
	"flag"
	"fmt"
	"github.com/clusterdns/clusterdns/internal/testbin"
	"os"
	"os/exec"
	"strings"
	"testing"
)

var (
	// repoRoot is the module's root folder (the one holding go.mod).
	repoRoot string
	// serverBin is ./cmd/clusterdns, built once by TestMain.
	serverBin string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode (they build and start the server)")
		os.Exit(0)
	}
	root, err := testbin.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	repoRoot = root
	bin, cleanup, err := testbin.BuildServer(repoRoot, "clusterdns-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	serverBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// inCI reports whether missing prerequisites are failures (CI=true) rather
// than reasons to skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// skipOrFail skips the test, or fails it under CI=true.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatalf("%s (CI=true: missing prerequisites are failures)", msg)
	}
	t.Skipf("%s (set CI=true to make this a failure)", msg)
}

var toolPackages = map[string]string{
	"dig":    "dnsutils (bind9-dnsutils)",
	"ip":     "iproute2",
	"getent": "libc-bin",
	"kdig":   "knot-dnsutils",
}

// requireTools skips (or fails under CI) when a command is not in PATH.
func requireTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			skipOrFail(t, "%s not found in PATH: install %s", n, toolPackages[n])
		}
	}
}

// requireRoot skips (or fails under CI) when not running as root, which
// network namespaces and /etc/netns need.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "not root: network namespaces need root (or CAP_SYS_ADMIN)")
	}
}

// tail returns at most the last n bytes of s, cut at a line start.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "[... earlier output cut ...]\n" + s
}
