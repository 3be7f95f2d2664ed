package kube

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/clusterdns/clusterdns/internal/testbin"
)

// The propagation benchmark's measurement (issue 19): a change of a
// headless service's EndpointSlice every 50 ms, each timed from the moment
// the API server ACKNOWLEDGED the write (the Update call returned) to the
// first DNS answer that holds it, on every DNS server under test at once
// (clusterdns, and CoreDNS over the same API server when it is built). One
// poller goroutine per server queries the name over a kept UDP socket,
// back to back with a pause of pollPause (a nanosleep: Go's time.Sleep
// rounds short sleeps up to about a millisecond here, which would blur
// the figure).
//
// The watch event may reach a server before the Update call returns to
// the client: the change is then visible at the acknowledgement, and its
// latency is that of the first answer received after it (the poll's
// resolution). The report counts those changes.

// pollPause is the pause between two queries of a poller.
const pollPause = 100 * time.Microsecond

// dnsTarget is a DNS server under test.
type dnsTarget struct {
	name string // "clusterdns", "CoreDNS"
	addr string // host:port, UDP
	// log is the server's output when it logs clusterdns' debug timings
	// ("snapshot published", "cluster index built"), else nil.
	log *testbin.LogBuffer
}

// changeIP is the address change i of a series gives the slice's first
// endpoint: 10.201.0.1, 10.201.0.2, ... (250 per /24); changeOf reverses it.
func changeIP(i int) string { return fmt.Sprintf("10.201.%d.%d", i/250, i%250+1) }

func changeOf(a [4]byte) (int, bool) {
	if a[0] != 10 || a[1] != 201 || a[3] == 0 || a[3] > 250 {
		return 0, false
	}
	return int(a[2])*250 + int(a[3]) - 1, true
}

// poller queries one server for one name until stopped, recording the
// receive time of every answer and the first answer that holds change i
// (or a later one: a change superseded before it showed is counted as
// visible with the one that replaced it).
type poller struct {
	target dnsTarget
	base   time.Time
	done   chan struct{}
	stop   atomic.Bool

	mu     sync.Mutex
	recv   []time.Duration // since base, of every answer, in order
	seen   []time.Duration // seen[i]: change i first visible, since base
	errors int
}

func startPoller(t *testing.T, target dnsTarget, name string, base time.Time) *poller {
	t.Helper()
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	conn, err := c.Dial(target.addr)
	if err != nil {
		t.Fatalf("%s: %v", target.name, err)
	}
	p := &poller{target: target, base: base, done: make(chan struct{})}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	q.SetEdns0(4096, false) // 100 addresses do not fit in 512 bytes
	pause := unix.NsecToTimespec(int64(pollPause))
	go func() {
		defer close(p.done)
		defer conn.Close()
		for !p.stop.Load() {
			q.Id = dns.Id()
			r, _, err := c.ExchangeWithConn(q, conn)
			at := time.Since(base)
			p.mu.Lock()
			if err != nil {
				p.errors++
			} else {
				p.recv = append(p.recv, at)
				latest := -1
				for _, rr := range r.Answer {
					if a, ok := rr.(*dns.A); ok {
						if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
							if i, ok := changeOf(ip.As4()); ok {
								latest = max(latest, i)
							}
						}
					}
				}
				for len(p.seen) <= latest {
					p.seen = append(p.seen, at)
				}
			}
			p.mu.Unlock()
			_ = unix.Nanosleep(&pause, nil)
		}
	}()
	return p
}

// seenCount is how many changes have shown; caughtUp whether n have and
// an answer arrived after `after` (since base).
func (p *poller) seenCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.seen)
}

func (p *poller) caughtUp(n int, after time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.seen) >= n && len(p.recv) > 0 && p.recv[len(p.recv)-1] >= after
}

func (p *poller) halt() {
	p.stop.Store(true)
	<-p.done
}

// serverPropagation is one server's figures over a series of changes.
type serverPropagation struct {
	target   string
	visible  []time.Duration // write acknowledged → answer holds the change
	issued   []time.Duration // write issued (before the Update call) → answer holds it
	early    int             // changes visible before their acknowledgement
	polls    int
	errors   int
	gap      time.Duration   // median time between two answers: the resolution
	snapshot []time.Duration // clusterdns' "snapshot published" took=
	index    []time.Duration // clusterdns' "cluster index built" took=
}

// propagation is a series of changes measured on every server.
type propagation struct {
	changes int
	every   time.Duration
	write   []time.Duration // the Update call alone
	servers []*serverPropagation
}

func (p *propagation) String() string {
	var b strings.Builder
	line := func(what string, d []time.Duration) {
		if len(d) == 0 {
			return
		}
		fmt.Fprintf(&b, "  %-52s n=%-4d p50 %-9v p90 %-9v p99 %-9v max %v\n", what, len(d),
			pct(d, 50), pct(d, 90), pct(d, 99), pct(d, 100))
	}
	line("API write (the Update call, issued → acknowledged)", p.write)
	for _, s := range p.servers {
		fmt.Fprintf(&b, "  %s: %d polls (one every %v, median), %d errors; %d of %d changes visible before the write's acknowledgement (counted as the first poll after it)\n",
			s.target, s.polls, s.gap.Round(time.Microsecond), s.errors, s.early, len(s.visible))
		line(s.target+": write acknowledged → DNS answer changed", s.visible)
		line(s.target+": write issued → DNS answer changed", s.issued)
		line(s.target+": Store.Flush (snapshot published)", s.snapshot)
		line(s.target+": index build (Handler.Update, off the lock)", s.index)
	}
	return b.String()
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	i = min(max(i-1, 0), len(s)-1)
	return s[i].Round(10 * time.Microsecond)
}

// measurePropagation sets the first endpoint's address of sl to
// changeIP(i), i = 0..n-1, one change every `every` (without waiting for
// the previous one to show), while one poller per target queries name;
// then it waits until every target shows the last change and computes the
// latencies.
func measurePropagation(t *testing.T, k *cluster, sl *discoveryv1.EndpointSlice, name string, n int, every time.Duration, targets ...dnsTarget) *propagation {
	t.Helper()
	logOff := make([]int, len(targets))
	for i, tg := range targets {
		if tg.log != nil {
			logOff[i] = tg.log.Len()
		}
	}
	base := time.Now()
	var pollers []*poller
	for _, tg := range targets {
		pollers = append(pollers, startPoller(t, tg, name, base))
	}
	res := &propagation{changes: n, every: every}
	issued, acked := make([]time.Duration, n), make([]time.Duration, n)
	ctx := context.Background()
	tick := time.NewTicker(every)
	for i := range n {
		<-tick.C
		sl.Endpoints[0].Addresses = []string{changeIP(i)}
		issued[i] = time.Since(base)
		got, err := k.c.DiscoveryV1().EndpointSlices(sl.Namespace).Update(ctx, sl, metav1.UpdateOptions{})
		acked[i] = time.Since(base)
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		res.write = append(res.write, acked[i]-issued[i])
		sl = got
	}
	tick.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range pollers {
		for !p.caughtUp(n, acked[n-1]) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: change %d of %d not answered within 30 s", p.target.name, p.seenCount(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, p := range pollers {
		p.halt()
	}
	time.Sleep(200 * time.Millisecond) // let the last log lines land
	for pi, p := range pollers {
		s := &serverPropagation{target: p.target.name, polls: len(p.recv), errors: p.errors}
		for i := range n {
			at := p.seen[i]
			if at < acked[i] {
				// Visible before the acknowledgement: the first answer after it.
				s.early++
				j := sort.Search(len(p.recv), func(j int) bool { return p.recv[j] >= acked[i] })
				at = p.recv[j] // exists: the last change was seen after its own ack
			}
			s.visible = append(s.visible, at-acked[i])
			s.issued = append(s.issued, at-issued[i])
		}
		var gaps []time.Duration
		for j := 1; j < len(p.recv); j++ {
			gaps = append(gaps, p.recv[j]-p.recv[j-1])
		}
		if len(gaps) > 0 {
			slices.Sort(gaps)
			s.gap = gaps[len(gaps)/2]
		}
		if lb := p.target.log; lb != nil {
			logs := lb.Since(logOff[pi])
			s.snapshot = tookOf(logs, "snapshot published")
			s.index = tookOf(logs, "cluster index built")
		}
		res.servers = append(res.servers, s)
	}
	return res
}

// ---- CoreDNS ----------------------------------------------------------------

// corednsBinary returns the CoreDNS binary bench/coredns/build.sh built:
// $CLUSTERDNS_COREDNS_BIN/coredns, else the cache folder build.sh uses
// (keyed by the sha256 of bench/coredns/go.sum). why says what is missing
// when it returns "".
func corednsBinary() (bin, why string) {
	dir := os.Getenv("CLUSTERDNS_COREDNS_BIN")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err.Error()
		}
		sum, err := os.ReadFile(filepath.Join(root, "bench", "coredns", "go.sum"))
		if err != nil {
			return "", err.Error()
		}
		cache := os.Getenv("CLUSTERDNS_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", err.Error()
			}
			cache = filepath.Join(home, ".cache", "clusterdns")
		}
		dir = filepath.Join(cache, "coredns", fmt.Sprintf("%x", sha256.Sum256(sum)))
	}
	bin = filepath.Join(dir, "coredns")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Sprintf("CoreDNS not built (%v): run `bash bench/coredns/build.sh`", err)
	}
	return bin, ""
}

// startCoreDNS runs CoreDNS with the kubernetes plugin for cluster.local
// against the API server of kubeconfig, on a free loopback port, without
// its cache plugin (every answer comes from its informers), and waits until
// it answers name with want. It returns nil, and logs why, when CoreDNS is
// not built or does not come up: the benchmark then measures clusterdns
// alone.
func startCoreDNS(t *testing.T, kubeconfig, name, want string) *dnsTarget {
	t.Helper()
	bin, why := corednsBinary()
	if bin == "" {
		t.Logf("CoreDNS side by side: skipped, %s; measuring clusterdns alone", why)
		return nil
	}
	dir := t.TempDir()
	for attempt := 0; ; attempt++ {
		port := freeDNSPort(t)
		corefile := fmt.Sprintf(".:%d {\n\tbind 127.0.0.1\n\tkubernetes cluster.local {\n\t\tkubeconfig %s\n\t}\n}\n", port, kubeconfig)
		path := filepath.Join(dir, "Corefile")
		if err := os.WriteFile(path, []byte(corefile), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := testbin.StartProcess("", bin, []string{"-conf", path}, nil)
		if err != nil {
			t.Logf("CoreDNS side by side: skipped, cannot start %s: %v; measuring clusterdns alone", bin, err)
			return nil
		}
		t.Cleanup(func() { p.Stop(5 * time.Second) })
		target := &dnsTarget{name: "CoreDNS", addr: fmt.Sprintf("127.0.0.1:%d", port)}
		if target.answers(name, want, 60*time.Second, p.Done()) {
			t.Logf("CoreDNS side by side: %s, kubernetes plugin, no cache plugin, on %s", bin, target.addr)
			return target
		}
		p.Stop(5 * time.Second)
		if attempt < 2 && strings.Contains(p.Out.String(), "address already in use") {
			continue
		}
		t.Logf("CoreDNS side by side: skipped, it did not answer %s with %s; measuring clusterdns alone; its log:\n%s",
			name, want, tail(p.Out.String(), 40))
		return nil
	}
}

// answers polls the target until an A query of name holds address want;
// false when timeout passes or exited is closed first.
func (d *dnsTarget) answers(name, want string, timeout time.Duration, exited <-chan struct{}) bool {
	c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	q.SetEdns0(4096, false)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if r, _, err := c.Exchange(q, d.addr); err == nil {
			for _, rr := range r.Answer {
				if a, ok := rr.(*dns.A); ok && a.A.String() == want {
					return true
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
