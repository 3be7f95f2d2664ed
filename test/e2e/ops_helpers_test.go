package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// opsServer is a server started with its own HTTP endpoints: the addresses
// of /healthz and /ready and of /metrics ("" when turned off).
type opsServer struct {
	*server
	healthAddr  string
	metricsAddr string
}

// opsOpts says which HTTP endpoints an opsServer serves and what else it
// is started with.
type opsOpts struct {
	health   bool     // serve /healthz and /ready on a free port
	metrics  bool     // serve /metrics on a free port
	upstream string   // forward to this address instead of not forwarding
	extra    []string // more flags, after standardArgs
}

// freeAddrs returns n distinct free 127.0.0.1 ports, none equal to avoid.
func freeAddrs(t *testing.T, n, avoid int) []string {
	t.Helper()
	seen := map[int]bool{avoid: true}
	var out []string
	for len(out) < n {
		p := freePort(t)
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	}
	return out
}

// startOpsServer starts a server on dir with standardArgs and the endpoints
// o asks for; both HTTP endpoints default to fixed ports, so each is given a
// free port or turned off. A port taken meanwhile makes launch try again
// with fresh ones (the args are computed per attempt).
func startOpsServer(t *testing.T, dir string, o opsOpts) *opsServer {
	t.Helper()
	srv := &opsServer{}
	srv.server = launch(t, launchOpts{dir: dir, args: func(port int) ([]string, []string) {
		addrs := freeAddrs(t, 2, port)
		srv.healthAddr, srv.metricsAddr = "", ""
		if o.health {
			srv.healthAddr = addrs[0]
		}
		if o.metrics {
			srv.metricsAddr = addrs[1]
		}
		args := standardArgs(dir, port)
		if o.upstream != "" {
			for i, a := range args {
				if a == noForwarding {
					args[i] = "--upstreams=" + o.upstream
				}
			}
		}
		args = append(args, "--health-listen="+srv.healthAddr, "--metrics-listen="+srv.metricsAddr)
		return append(args, o.extra...), nil
	}})
	return srv
}

// httpClient is the client of the HTTP endpoints: short timeouts, a new
// connection per request (as kubelet probes do).
var httpClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// httpGet returns the status and body of GET url.
func httpGet(url string) (int, string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// metricSample is one line of the Prometheus text format.
type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

// metricSet is a scrape of /metrics.
type metricSet struct {
	samples []metricSample
	raw     string
}

// scrape fetches and parses http://addr/metrics (text format 0.0.4, what
// promhttp serves without an Accept header).
func scrape(t *testing.T, addr string) *metricSet {
	t.Helper()
	code, body, err := httpGet("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d\n%s", code, body)
	}
	m, err := parseMetrics(body)
	if err != nil {
		t.Fatalf("/metrics: %v\n%s", err, body)
	}
	return m
}

// parseMetrics reads the Prometheus text format: name{k="v",...} value
// [timestamp] lines; comments are skipped.
func parseMetrics(text string) (*metricSet, error) {
	m := &metricSet{raw: text}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := metricSample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(rest, "{ "); i < 0 {
			return nil, fmt.Errorf("cannot read metric line %q", line)
		} else {
			s.name, rest = rest[:i], rest[i:]
		}
		if strings.HasPrefix(rest, "{") {
			rest = rest[1:]
			for {
				rest = strings.TrimLeft(rest, ", ")
				if strings.HasPrefix(rest, "}") {
					rest = rest[1:]
					break
				}
				eq := strings.Index(rest, `="`)
				if eq < 0 {
					return nil, fmt.Errorf("cannot read labels of %q", line)
				}
				key := rest[:eq]
				rest = rest[eq+2:]
				var val strings.Builder
				closed := false
				for i := 0; i < len(rest); i++ {
					c := rest[i]
					if c == '\\' && i+1 < len(rest) {
						i++
						switch rest[i] {
						case 'n':
							val.WriteByte('\n')
						default:
							val.WriteByte(rest[i])
						}
						continue
					}
					if c == '"' {
						rest, closed = rest[i+1:], true
						break
					}
					val.WriteByte(c)
				}
				if !closed {
					return nil, fmt.Errorf("unterminated label value in %q", line)
				}
				s.labels[key] = val.String()
			}
		}
		f := strings.Fields(rest)
		if len(f) < 1 {
			return nil, fmt.Errorf("no value in %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("value of %q: %v", line, err)
		}
		s.value = v
		m.samples = append(m.samples, s)
	}
	return m, sc.Err()
}

// get returns the value of the sample named name whose labels are exactly
// labels ("k", "v", ...), and whether there is one.
func (m *metricSet) get(name string, labels ...string) (float64, bool) {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, s := range m.samples {
		if s.name != name || len(s.labels) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
				break
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

// value is get with 0 for a sample that is absent (a counter not yet
// moved is not exported).
func (m *metricSet) value(name string, labels ...string) float64 {
	v, _ := m.get(name, labels...)
	return v
}

// lines returns the sample lines of the scrape whose name starts with
// prefix, for messages.
func (m *metricSet) lines(prefix string) string {
	var out []string
	for _, l := range strings.Split(m.raw, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// exchange asks the server one question over proto (udp or tcp) with the
// miekg/dns client: faster than a dig process, for loops.
func (s *server) exchange(proto, name string, qtype uint16, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: proto, Timeout: timeout}
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := c.Exchange(m, s.addr())
	return r, err
}

// queryResult is one query of a background querier.
type queryResult struct {
	at    time.Time // when it was sent
	took  time.Duration
	err   error // transport error, or a wrong answer
	ttl   uint32
	rcode int
}

// querier asks name A over UDP every interval until stopped, and records
// every outcome; a query is good when it is answered NOERROR with exactly
// one A record.
type querier struct {
	mu      sync.Mutex
	results []queryResult
	stopC   chan struct{}
	done    chan struct{}
}

func startQuerier(s *server, name string, interval, timeout time.Duration) *querier {
	q := &querier{stopC: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		c := &dns.Client{Net: "udp", Timeout: timeout}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			m := new(dns.Msg).SetQuestion(dns.Fqdn(name), dns.TypeA)
			start := time.Now()
			r, _, err := c.Exchange(m, s.addr())
			res := queryResult{at: start, took: time.Since(start), err: err}
			if err == nil {
				res.rcode = r.Rcode
				switch {
				case r.Rcode != dns.RcodeSuccess:
					res.err = fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
				case len(r.Answer) != 1:
					res.err = fmt.Errorf("%d answer records, want 1: %v", len(r.Answer), r.Answer)
				default:
					res.ttl = r.Answer[0].Header().Ttl
				}
			}
			q.mu.Lock()
			q.results = append(q.results, res)
			q.mu.Unlock()
			select {
			case <-q.stopC:
				return
			case <-tick.C:
			}
		}
	}()
	return q
}

// stop ends the querier and returns what it recorded.
func (q *querier) stop() []queryResult {
	select {
	case <-q.stopC:
	default:
		close(q.stopC)
	}
	<-q.done
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.results)
}
