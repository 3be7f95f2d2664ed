package server

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testtls"
)

// tlsListener serves the example cluster over UDP, TCP and TLS with the
// certificate files given.
func tlsListener(t testing.TB, certFile, keyFile string, opt ListenOptions) (*Listener, *CertReloader) {
	t.Helper()
	certs, err := NewCertReloader(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	certs.CheckEvery = 0
	opt.Addr = "127.0.0.1:0"
	opt.TLS.Addr = "127.0.0.1:0"
	opt.TLS.Certs = certs
	l, err := Listen(exampleHandler(t, nil), opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve()
	t.Cleanup(l.Close)
	return l, certs
}

func tlsClient(ca *testtls.CA) *dns.Client {
	return &dns.Client{Net: "tcp-tls", Timeout: 2 * time.Second,
		TLSConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "dns.test"}}
}

// servedSerial handshakes with addr and returns the serial number of the
// certificate the server showed.
func servedSerial(t *testing.T, ca *testtls.CA, addr string) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "dns.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestTLSListenerAnswersAndReloadsRotatedCert serves a query over TLS, then
// swaps the certificate the way cert-manager's secret volume does (a
// symlink to a new folder) and expects the new certificate on the next
// handshake, with no restart.
func TestTLSListenerAnswersAndReloadsRotatedCert(t *testing.T) {
	ca := testtls.NewCA(t)
	dir := t.TempDir()
	for i, v := range []string{"v1", "v2"} {
		os.Mkdir(filepath.Join(dir, v), 0o700)
		ca.IssueFiles(t, filepath.Join(dir, v), "dns.test", int64(10+i))
	}
	link := filepath.Join(dir, "current")
	if err := os.Symlink("v1", link); err != nil {
		t.Fatal(err)
	}
	l, _ := tlsListener(t, filepath.Join(link, "cert.pem"), filepath.Join(link, "key.pem"), ListenOptions{})
	addr := l.TLSAddr().String()
	m := new(dns.Msg)
	m.SetQuestion("web-server-service.default.svc.cluster.local.", dns.TypeA)
	r, _, err := tlsClient(ca).Exchange(m, addr)
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("over TLS: %v %v", r, err)
	}
	if s := servedSerial(t, ca, addr); s != 10 {
		t.Fatalf("serial %d served, want 10", s)
	}
	tmp := filepath.Join(dir, "next")
	if err := os.Symlink("v2", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil { // atomic swap
		t.Fatal(err)
	}
	if s := servedSerial(t, ca, addr); s != 11 {
		t.Fatalf("serial %d served after the swap, want 11", s)
	}
	// A broken pair on disk keeps the last good one.
	os.WriteFile(filepath.Join(dir, "v2", "cert.pem"), []byte("garbage"), 0o600)
	if s := servedSerial(t, ca, addr); s != 11 {
		t.Fatalf("serial %d served after a broken write, want 11 kept", s)
	}
}

func TestCertReloaderRefusesMissingAndWarnsExpired(t *testing.T) {
	ca := testtls.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.IssueFiles(t, dir, "dns.test", 3)
	missing := filepath.Join(dir, "nope.pem")
	if _, err := NewCertReloader(missing, keyFile, nil); err == nil || !strings.Contains(err.Error(), "tls_cert_file "+missing) {
		t.Fatalf("missing cert: %v, want an error naming it", err)
	}
	if _, err := NewCertReloader(certFile, missing, nil); err == nil || !strings.Contains(err.Error(), "tls_key_file "+missing) {
		t.Fatalf("missing key: %v, want an error naming it", err)
	}
	if _, err := NewCertReloader(keyFile, keyFile, nil); err == nil || !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("a key as the cert: %v, want an error naming the file", err)
	}
	c, k := ca.Issue(t, "dns.test", 4, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	os.WriteFile(certFile, c, 0o600)
	os.WriteFile(keyFile, k, 0o600)
	var logs bytes.Buffer
	if _, err := NewCertReloader(certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"TLS certificate expired\"") {
		t.Fatalf("no warning for an expired certificate: %s", logs.String())
	}
}

// TestTLSHandshakeFloodDoesNotStarveUDP holds every TLS slot with
// connections that never handshake: UDP and plain TCP queries are still
// answered; once the flood lets go a real TLS client gets in.
func TestTLSHandshakeFloodDoesNotStarveUDP(t *testing.T) {
	ca := testtls.NewCA(t)
	certFile, keyFile := ca.IssueFiles(t, t.TempDir(), "dns.test", 5)
	const slots = 8
	l, _ := tlsListener(t, certFile, keyFile, ListenOptions{MaxTCPConns: slots, TLS: TLSOptions{HandshakeTimeout: 5 * time.Second}})
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for range 5 * slots {
		c, err := net.Dial("tcp", l.TLSAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, c)
	}
	for deadline := time.Now().Add(5 * time.Second); len(l.tlsSem) < slots; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the flood holds %d of %d TLS slots", len(l.tlsSem), slots)
		}
	}
	m := new(dns.Msg)
	m.SetQuestion("web-server-service.default.svc.cluster.local.", dns.TypeA)
	for i := range 200 {
		for _, netw := range []string{"udp", "tcp"} {
			r, _, err := (&dns.Client{Net: netw, Timeout: time.Second}).Exchange(m, l.Addr().String())
			if err != nil || len(r.Answer) != 1 {
				t.Fatalf("%s query %d during the flood: %v %v", netw, i, r, err)
			}
		}
	}
	for range 5 * slots {
		flood[0].Close()
		flood = flood[1:]
	}
	for deadline := time.Now().Add(5 * time.Second); len(l.tlsSem) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d TLS slots still held 5 s after the flood closed", len(l.tlsSem))
		}
	}
	r, _, err := tlsClient(ca).Exchange(m, l.TLSAddr().String())
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("TLS after the flood: %v %v", r, err)
	}
}

// TestTLSSlowHandshakeIsCut checks the handshake timeout: a connection that
// sends nothing is closed by the server after it, not after the idle
// timeout.
func TestTLSSlowHandshakeIsCut(t *testing.T) {
	ca := testtls.NewCA(t)
	certFile, keyFile := ca.IssueFiles(t, t.TempDir(), "dns.test", 6)
	l, _ := tlsListener(t, certFile, keyFile, ListenOptions{TCPIdleTimeout: time.Minute, TLS: TLSOptions{HandshakeTimeout: 200 * time.Millisecond}})
	c, err := net.Dial("tcp", l.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from a connection that never said hello")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("closed after %v, want about the 200 ms handshake timeout", d)
	}
}

// BenchmarkTLSQueriesReusedConn is queries over one reused TLS connection
// (the handshake paid once).
func BenchmarkTLSQueriesReusedConn(b *testing.B) {
	ca := testtls.NewCA(b)
	certFile, keyFile := ca.IssueFiles(b, b.TempDir(), "dns.test", 7)
	l, _ := tlsListener(b, certFile, keyFile, ListenOptions{})
	conn, err := tlsClient(ca).Dial(l.TLSAddr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	m := new(dns.Msg)
	m.SetQuestion("web-server-service.default.svc.cluster.local.", dns.TypeA)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Id = uint16(i)
		if err := conn.WriteMsg(m); err != nil {
			b.Fatal(err)
		}
		r, err := conn.ReadMsg()
		if err != nil || r.Id != m.Id || len(r.Answer) != 1 {
			b.Fatal(r, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "qps")
}

// TestTLSPipelinedQueries sends several queries on one TLS connection
// before reading any answer (RFC 7766 pipelining): each gets its own.
func TestTLSPipelinedQueries(t *testing.T) {
	ca := testtls.NewCA(t)
	certFile, keyFile := ca.IssueFiles(t, t.TempDir(), "dns.test", 8)
	l, _ := tlsListener(t, certFile, keyFile, ListenOptions{})
	conn, err := tlsClient(ca).Dial(l.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	names := []string{"web-server-service.default.svc.cluster.local.", "nope.default.svc.cluster.local."}
	const n = 20
	for i := range n {
		m := new(dns.Msg)
		m.SetQuestion(names[i%2], dns.TypeA)
		m.Id = uint16(1000 + i)
		if err := conn.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	seen := map[uint16]bool{}
	for range n {
		r, err := conn.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		i := int(r.Id) - 1000
		if i < 0 || i >= n || seen[r.Id] || r.Question[0].Name != names[i%2] {
			t.Fatalf("answer %d for %v: unexpected or repeated", r.Id, r.Question)
		}
		if want := []int{dns.RcodeSuccess, dns.RcodeNameError}[i%2]; r.Rcode != want {
			t.Fatalf("answer %d: rcode %d, want %d", r.Id, r.Rcode, want)
		}
		seen[r.Id] = true
	}
}
