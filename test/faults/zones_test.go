package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// probe is a question whose answer must not change while the zones folder
// misbehaves.
type probe struct {
	name  string
	qtype uint16
}

var baselineProbes = []probe{
	{"web-server-service.default.svc.cluster.local", dns.TypeA},
	{"cassandra.data.svc.cluster.local", dns.TypeA},
	{"_web-server._tcp.web-server-service.default.svc.cluster.local", dns.TypeSRV},
	{"100.0.96.10.in-addr.arpa", dns.TypePTR},
	{"www.example.test", dns.TypeA},
	{"api.example.test", dns.TypeA},
}

// answerKey is an answer's rcode and records, TTLs and order left out.
func answerKey(r *dns.Msg) string {
	var rrs []string
	for _, rr := range r.Answer {
		c := dns.Copy(rr)
		c.Header().Ttl = 0
		rrs = append(rrs, c.String())
	}
	slices.Sort(rrs)
	return dns.RcodeToString[r.Rcode] + " " + strings.Join(rrs, " | ")
}

// snapshot answers every probe.
func snapshot(t *testing.T, p *proc, probes []probe) map[probe]string {
	t.Helper()
	out := map[probe]string{}
	for _, q := range probes {
		r, err := p.ask(q.name, q.qtype, "udp")
		if err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			t.Fatalf("%s %s not answered: %v", q.name, dns.TypeToString[q.qtype], r)
		}
		out[q] = answerKey(r)
	}
	return out
}

// holdsFor asks every probe every 100 ms for d: each answer must stay as
// it was.
func holdsFor(t *testing.T, p *proc, want map[probe]string, d time.Duration, what string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for q, w := range want {
			r, err := p.ask(q.name, q.qtype, "udp")
			if err != nil {
				t.Fatalf("%s: %s %s: %v", what, q.name, dns.TypeToString[q.qtype], err)
			}
			if got := answerKey(r); got != w {
				t.Fatalf("%s: %s %s changed:\n got %s\nwant %s", what, q.name, dns.TypeToString[q.qtype], got, w)
			}
		}
	}
}

// servedWithin waits until name has an A record, and returns how long it took.
func servedWithin(t *testing.T, p *proc, name string, d time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		r, err := p.ask(name, dns.TypeA, "udp")
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: %s not served within %s: %v %v", what, name, d, r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeVersion writes the example cluster plus a service named extra
// (ClusterIP 10.96.77.<n>) and the example zone plus extra.example.test
// into dir, each file renamed over the old one (atomic replace).
func writeVersion(t *testing.T, dir, extra string, n int) {
	t.Helper()
	cluster, err := os.ReadFile(filepath.Join(repoRoot, "zones", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cluster = append(cluster, fmt.Sprintf(`
---
apiVersion: v1
kind: Service
metadata: {name: %s, namespace: default}
spec: {type: ClusterIP, clusterIP: 10.96.77.%d, ports: [{name: http, protocol: TCP, port: 80}]}
`, extra, n)...)
	zone, err := os.ReadFile(filepath.Join(repoRoot, "zones", "example.test.zone"))
	if err != nil {
		t.Fatal(err)
	}
	zone = append(zone, fmt.Sprintf("%s IN A 127.0.77.%d\n", extra, n)...)
	for name, data := range map[string][]byte{"cluster.yaml": cluster, "example.test.zone": zone} {
		tmp := filepath.Join(dir, ".tmp-"+name) // dot files are not read
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// waitLog waits until the server's log holds substr.
func waitLog(t *testing.T, p *proc, substr string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if strings.Contains(p.Out.String(), substr) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("the log does not say %q within %s", substr, d)
		}
	}
}

// The zones folder misbehaves: every file replaced by rename, a file
// replaced by a dangling symlink or by a folder (unreadable even for
// root), the whole folder deleted. Nothing that was answered stops being
// answered, errors are logged, and the server picks the folder up again
// by itself when it comes back.
func TestZonesFolderFaults(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "zones")
	copyZones(t, dir)
	p := startServer(t, "web-server-service.default.svc.cluster.local", "--zones-dir", dir, "--upstreams=")
	want := snapshot(t, p, baselineProbes)

	// 1. Every file replaced by rename: the new contents are served, the
	// rest unchanged.
	writeVersion(t, dir, "fault-one", 1)
	took := servedWithin(t, p, "fault-one.default.svc.cluster.local", 10*time.Second, "files renamed over")
	servedWithin(t, p, "fault-one.example.test", 10*time.Second, "zone file renamed over")
	holdsFor(t, p, want, 200*time.Millisecond, "files renamed over")
	t.Logf("files replaced by rename: served after %s", took.Round(time.Millisecond))
	probes := append(slices.Clone(baselineProbes), probe{"fault-one.default.svc.cluster.local", dns.TypeA}, probe{"fault-one.example.test", dns.TypeA})
	want = snapshot(t, p, probes)

	// 2. Both files replaced by dangling symlinks: unreadable, errors
	// logged, the last good contents served.
	for _, name := range []string{"cluster.yaml", "example.test.zone"} {
		link := filepath.Join(dir, ".link-"+name)
		if err := os.Symlink(filepath.Join(base, "nowhere", name), link); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	waitLog(t, p, "cluster.yaml: open", 10*time.Second)
	waitLog(t, p, "example.test.zone: open", 10*time.Second)
	holdsFor(t, p, want, 2500*time.Millisecond, "dangling symlinks")
	writeVersion(t, dir, "fault-two", 2)
	took = servedWithin(t, p, "fault-two.default.svc.cluster.local", 10*time.Second, "readable again")
	servedWithin(t, p, "fault-two.example.test", 10*time.Second, "zone readable again")
	t.Logf("dangling symlinks: last good served, new files served %s after they came back", took.Round(time.Millisecond))
	probes = append(slices.Clone(baselineProbes), probe{"fault-two.default.svc.cluster.local", dns.TypeA}, probe{"fault-two.example.test", dns.TypeA})
	want = snapshot(t, p, probes)

	// 3. A file swapped atomically with a folder of the same name
	// (renameat2 RENAME_EXCHANGE): unreadable, kept.
	for _, name := range []string{"cluster.yaml", "example.test.zone"} {
		swap := filepath.Join(dir, ".swap-"+name)
		if err := os.Mkdir(swap, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Renameat2(unix.AT_FDCWD, swap, unix.AT_FDCWD, filepath.Join(dir, name), unix.RENAME_EXCHANGE); err != nil {
			t.Skipf("renameat2 RENAME_EXCHANGE: %v", err)
		}
	}
	waitLog(t, p, "cluster.yaml: is a folder now", 10*time.Second)
	waitLog(t, p, "example.test.zone: is a folder now", 10*time.Second)
	holdsFor(t, p, want, 2500*time.Millisecond, "files replaced by folders")
	for _, name := range []string{"cluster.yaml", "example.test.zone"} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	writeVersion(t, dir, "fault-three", 3)
	servedWithin(t, p, "fault-three.default.svc.cluster.local", 10*time.Second, "files back")
	servedWithin(t, p, "fault-three.example.test", 10*time.Second, "zone file back")
	probes = append(slices.Clone(baselineProbes), probe{"fault-three.default.svc.cluster.local", dns.TypeA})
	want = snapshot(t, p, probes)

	// 4. The folder deleted (renamed away, then removed): the last good
	// cluster and zones keep being served, the error is logged; a folder
	// that comes back at the same path is read by itself.
	gone := dir + ".gone"
	if err := os.Rename(dir, gone); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(gone); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "read cluster folder", 10*time.Second)
	holdsFor(t, p, want, 4500*time.Millisecond, "folder deleted") // two polls
	next := dir + ".next"
	if err := os.Mkdir(next, 0o755); err != nil {
		t.Fatal(err)
	}
	writeVersion(t, next, "fault-four", 4)
	if err := os.Rename(next, dir); err != nil {
		t.Fatal(err)
	}
	took = servedWithin(t, p, "fault-four.default.svc.cluster.local", 10*time.Second, "folder back")
	servedWithin(t, p, "fault-four.example.test", 10*time.Second, "folder back (zone)")
	holdsFor(t, p, map[probe]string{baselineProbes[0]: want[baselineProbes[0]], baselineProbes[4]: want[baselineProbes[4]]}, 200*time.Millisecond, "folder back")
	t.Logf("folder deleted: last good served; a new folder at the path served after %s", took.Round(time.Millisecond))
	// The new folder is watched (events again, not only the 2 s poll).
	waitLog(t, p, "watching the new one", 10*time.Second)
	writeVersion(t, dir, "fault-five", 5)
	took = servedWithin(t, p, "fault-five.default.svc.cluster.local", 10*time.Second, "change in the new folder")
	t.Logf("a change in the folder that came back served after %s", took.Round(time.Millisecond))
}

// The folder replaced as a whole, atomically: zones_dir a symlink swapped
// to another folder (how a Kubernetes ConfigMap volume updates), and a
// folder exchanged with another (renameat2 RENAME_EXCHANGE). The new
// contents are served, nothing fails in between.
func TestZonesFolderReplacedAtomically(t *testing.T) {
	base := t.TempDir()
	v1 := filepath.Join(base, "v1")
	copyZones(t, v1)
	link := filepath.Join(base, "zones")
	if err := os.Symlink(v1, link); err != nil {
		t.Fatal(err)
	}
	p := startServer(t, "web-server-service.default.svc.cluster.local", "--zones-dir", link, "--upstreams=")
	want := snapshot(t, p, baselineProbes)

	v2 := filepath.Join(base, "v2")
	if err := os.Mkdir(v2, 0o755); err != nil {
		t.Fatal(err)
	}
	writeVersion(t, v2, "swapped", 10)
	tmp := filepath.Join(base, ".zones-next")
	if err := os.Symlink(v2, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	took := servedWithin(t, p, "swapped.default.svc.cluster.local", 10*time.Second, "symlink swapped")
	servedWithin(t, p, "swapped.example.test", 10*time.Second, "symlink swapped (zone)")
	holdsFor(t, p, want, 200*time.Millisecond, "symlink swapped")
	t.Logf("symlink swap: served after %s", took.Round(time.Millisecond))

	// Exchange the folder v2 (behind the link) with a new one.
	v3 := filepath.Join(base, "v3")
	if err := os.Mkdir(v3, 0o755); err != nil {
		t.Fatal(err)
	}
	writeVersion(t, v3, "exchanged", 11)
	if err := unix.Renameat2(unix.AT_FDCWD, v3, unix.AT_FDCWD, v2, unix.RENAME_EXCHANGE); err != nil {
		t.Skipf("renameat2 RENAME_EXCHANGE: %v", err)
	}
	took = servedWithin(t, p, "exchanged.default.svc.cluster.local", 10*time.Second, "folder exchanged")
	holdsFor(t, p, want, 200*time.Millisecond, "folder exchanged")
	t.Logf("folder exchanged: served after %s", took.Round(time.Millisecond))
}
