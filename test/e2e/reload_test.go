package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const (
	// reloadDeadline bounds the wait for an edit to be served. The
	// contract says changes are picked up within a second; the slack is
	// for a loaded machine. The time taken is logged.
	reloadDeadline = 5 * time.Second
	// logDeadline bounds the wait for a refused file to be logged.
	logDeadline = 5 * time.Second
)

// lineOf returns the 1-based number of the line equal to line in text.
func lineOf(t *testing.T, text, line string) int {
	t.Helper()
	n := 0
	for i, l := range strings.Split(text, "\n") {
		if l == line {
			if n != 0 {
				t.Fatalf("line %q occurs twice", line)
			}
			n = i + 1
		}
	}
	if n == 0 {
		t.Fatalf("no line %q", line)
	}
	return n
}

// replaceLine replaces line number n (1-based) of text.
func replaceLine(text string, n int, with string) string {
	lines := strings.Split(text, "\n")
	lines[n-1] = with
	return strings.Join(lines, "\n")
}

// writeAtomic replaces a file by renaming a new one over it, as kubectl
// cp / ConfigMap updates / most editors do. The temporary name starts with
// a dot, which the server ignores.
func writeAtomic(t *testing.T, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// writeInPlace rewrites a file in place (truncate and write).
func writeInPlace(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// short returns the answer's records as dig +short prints them (rdata
// only), with the full reply for messages.
func (s *server) short(name, qtype string) ([]string, *digResult, error) {
	r, err := s.digTry(name, qtype)
	if err != nil {
		return nil, nil, err
	}
	var out []string
	for _, a := range r.answer {
		out = append(out, strings.TrimSpace(strings.TrimPrefix(a.String(), a.Header().String())))
	}
	return out, r, nil
}

// waitAnswer polls until the answer to name qtype is exactly want.
func (s *server) waitAnswer(t *testing.T, name, qtype string, want ...string) {
	t.Helper()
	took := eventually(t, reloadDeadline, fmt.Sprintf("%s %s answers %q", name, qtype, want), func() (bool, string) {
		got, r, err := s.short(name, qtype)
		if err != nil {
			return false, err.Error()
		}
		return slices.Equal(got, want), fmt.Sprintf("%q\n%s", got, r)
	})
	t.Logf("%s %s answered %q after %v", name, qtype, want, took.Round(time.Millisecond))
}

// wantAnswer checks once that the answer to name qtype is exactly want.
func (s *server) wantAnswer(t *testing.T, name, qtype string, want ...string) {
	t.Helper()
	got, r, err := s.short(name, qtype)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s %s: got %q, want %q (at %s)\n%s", name, qtype, got, want, time.Now().UTC().Format("15:04:05.000"), r)
	}
}

// waitLog polls until the server logged, after off, a line matching re, and
// returns that line.
func (s *server) waitLog(t *testing.T, off int, re *regexp.Regexp, what string) string {
	t.Helper()
	var found string
	eventually(t, logDeadline, what, func() (bool, string) {
		for _, l := range strings.Split(s.logSince(off), "\n") {
			if re.MatchString(l) {
				found = l
				return true, ""
			}
		}
		return false, fmt.Sprintf("no log line matching %q since the write; log since then:\n%s", re, tail(s.logSince(off), 8<<10))
	})
	return found
}

// soaSerial returns the serial of zone's SOA.
func (s *server) soaSerial(t *testing.T, zone string) uint32 {
	t.Helper()
	r := s.dig(t, zone, "SOA")
	if len(r.answer) != 1 {
		t.Fatalf("SOA %s: %d answer records\n%s", zone, len(r.answer), r)
	}
	soa, ok := r.answer[0].(*dns.SOA)
	if !ok {
		t.Fatalf("SOA %s: answer %s\n%s", zone, r.answer[0], r)
	}
	return soa.Serial
}

// serialAfter reports whether serial a is after b (RFC 1982).
func serialAfter(a, b uint32) bool { return a != b && int32(a-b) > 0 }

const webName = "web-server-service.default.svc.cluster.local"

// TestReloadClusterFile edits the cluster manifests under a running server:
// changes are served, a broken file is refused with path:line in the log
// while the last good contents stay served, and the fix is served again.
func TestReloadClusterFile(t *testing.T) {
	requireTools(t, "dig")
	dir := copyZones(t)
	file := filepath.Join(dir, "cluster.yaml")
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, dir)
	s.wantAnswer(t, webName, "A", "10.96.0.100")
	serial0 := s.soaSerial(t, "cluster.local")

	// The service's two address lines, next to each other.
	ipLine := lineOf(t, string(orig), "  clusterIP: 10.96.0.100")
	if got := strings.Split(string(orig), "\n")[ipLine]; got != "  clusterIPs: [10.96.0.100]" {
		t.Fatalf("line %d of cluster.yaml is %q, want the clusterIPs of web-server-service", ipLine+1, got)
	}
	withIP := func(ip string) string {
		c := replaceLine(string(orig), ipLine, "  clusterIP: "+ip)
		return replaceLine(c, ipLine+1, "  clusterIPs: ["+ip+"]")
	}

	t.Run("edit-in-place", func(t *testing.T) {
		writeInPlace(t, file, withIP("10.96.0.101"))
		s.waitAnswer(t, webName, "A", "10.96.0.101")
		s.wantAnswer(t, "101.0.96.10.in-addr.arpa", "PTR", webName+".")
		if serial1 := s.soaSerial(t, "cluster.local"); !serialAfter(serial1, serial0) {
			t.Errorf("SOA serial %d after the change, was %d: it must increase when the data changes", serial1, serial0)
		}
	})

	// Each broken version is made from a good one with its own address,
	// served first, so that errors logged for an earlier broken version
	// (the server may re-read the folder periodically) cannot be taken
	// for this one's.
	broken := []struct {
		name  string
		text  func(ip string) string
		lines []int // the line(s) the error may name
	}{
		{
			// "    clusterIP:" under "  type: ClusterIP": a YAML syntax error.
			name:  "bad-indentation",
			text:  func(ip string) string { return replaceLine(withIP(ip), ipLine, "    clusterIP: "+ip) },
			lines: []int{ipLine},
		},
		{
			name: "clusterIP-not-an-ip",
			text: func(ip string) string {
				return replaceLine(replaceLine(withIP(ip), ipLine, "  clusterIP: not-an-ip"), ipLine+1, "  clusterIPs: [not-an-ip]")
			},
			lines: []int{ipLine, ipLine + 1},
		},
		{
			// Only clusterIP is broken; the API server refuses such a
			// service (clusterIP must be clusterIPs[0]).
			name:  "only-clusterIP-not-an-ip",
			text:  func(ip string) string { return replaceLine(withIP(ip), ipLine, "  clusterIP: not-an-ip") },
			lines: []int{ipLine},
		},
	}
	for i, b := range broken {
		t.Run("refused-"+b.name, func(t *testing.T) {
			ip := fmt.Sprintf("10.96.0.%d", 110+i)
			writeAtomic(t, file, withIP(ip))
			s.waitAnswer(t, webName, "A", ip)

			off := s.logOffset()
			writeAtomic(t, file, b.text(ip))
			var alts []string
			for _, n := range b.lines {
				alts = append(alts, fmt.Sprint(n))
			}
			re := regexp.MustCompile(regexp.QuoteMeta(file) + `:(` + strings.Join(alts, "|") + `):`)
			line := s.waitLog(t, off, re, fmt.Sprintf("log names %s:%v for the broken line", file, b.lines))
			t.Logf("logged: %s", line)
			// The reload happened (it was logged): the last good contents
			// must still be served, the rest of the cluster too.
			s.wantAnswer(t, webName, "A", ip)
			s.wantAnswer(t, "cassandra-0.cassandra.data.svc.cluster.local", "A", "10.244.1.20")
		})
	}

	t.Run("fixed", func(t *testing.T) {
		writeAtomic(t, file, withIP("10.96.0.102"))
		s.waitAnswer(t, webName, "A", "10.96.0.102")
	})
}

const wwwName = "www.example.test"

// TestReloadZoneFile does the same with a master file (*.zone).
func TestReloadZoneFile(t *testing.T) {
	requireTools(t, "dig")
	dir := copyZones(t)
	file := filepath.Join(dir, "example.test.zone")
	origBytes, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	orig := string(origBytes)
	s := startServer(t, dir)
	s.wantAnswer(t, wwwName, "A", "127.0.0.80")

	const soaLine = "@       IN SOA  ns1.example.test. hostmaster.example.test. 2026112501 3600 600 86400 60"
	const wwwLine = "www     IN A    127.0.0.80"
	soaN, wwwN := lineOf(t, orig, soaLine), lineOf(t, orig, wwwLine)
	version := func(serial int, www string) string {
		c := replaceLine(orig, soaN, strings.Replace(soaLine, "2026112501", fmt.Sprint(serial), 1))
		return replaceLine(c, wwwN, "www     IN A    "+www)
	}

	t.Run("edit", func(t *testing.T) {
		writeAtomic(t, file, version(2026112502, "127.0.0.81"))
		s.waitAnswer(t, wwwName, "A", "127.0.0.81")
		if got := s.soaSerial(t, "example.test"); got != 2026112502 {
			t.Errorf("example.test SOA serial %d, want the file's 2026112502", got)
		}
	})
	t.Run("refused-bad-address", func(t *testing.T) {
		off := s.logOffset()
		writeAtomic(t, file, version(2026112503, "not-an-ip"))
		re := regexp.MustCompile(regexp.QuoteMeta("example.test.zone") + fmt.Sprintf(`(:%d\b|.*\bline:? %d\b)`, wwwN, wwwN))
		line := s.waitLog(t, off, re, fmt.Sprintf("log names example.test.zone and line %d", wwwN))
		t.Logf("logged: %s", line)
		s.wantAnswer(t, wwwName, "A", "127.0.0.81")
		s.wantAnswer(t, "api.example.test", "A", "www.example.test.", "127.0.0.81")
		s.wantAnswer(t, webName, "A", "10.96.0.100")
	})
	t.Run("fixed", func(t *testing.T) {
		writeAtomic(t, file, version(2026112504, "127.0.0.82"))
		s.waitAnswer(t, wwwName, "A", "127.0.0.82")
	})
}
