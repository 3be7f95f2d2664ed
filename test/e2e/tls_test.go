package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testtls"
)

// tlsFiles writes a fresh CA (ca.pem) and a certificate for dns.test
// signed by it into a new folder.
func tlsFiles(t *testing.T) (ca *testtls.CA, caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	ca = testtls.NewCA(t)
	caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = ca.IssueFiles(t, dir, "dns.test", 1)
	return ca, caFile, certFile, keyFile
}

// startTLSServer starts clusterdns serving DNS over TLS too, on its own
// free port, and returns that address.
func startTLSServer(t *testing.T, certFile, keyFile string, extra ...string) (*server, string) {
	t.Helper()
	tlsPort := freePort(t)
	tlsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	dir := copyZones(t)
	s := startServer(t, dir, append([]string{"--tls-listen", tlsAddr, "--tls-cert-file", certFile, "--tls-key-file", keyFile}, extra...)...)
	return s, tlsAddr
}

// TestKdigOverTLS asks the real binary over DNS over TLS with kdig,
// verifying the certificate against the test's CA and the name dns.test.
func TestKdigOverTLS(t *testing.T) {
	requireTools(t, "kdig")
	_, caFile, certFile, keyFile := tlsFiles(t)
	_, tlsAddr := startTLSServer(t, certFile, keyFile)
	host, port, _ := net.SplitHostPort(tlsAddr)
	out, code, err := runCmd(10*time.Second, "kdig", "@"+host, "-p", port, "+tls-ca="+caFile, "+tls-hostname=dns.test",
		"web-server-service.default.svc.cluster.local", "A")
	if err != nil || code != 0 {
		t.Fatalf("kdig: exit %d %v\n%s", code, err, out)
	}
	for _, want := range []string{";; TLS session (TLS1.", "status: NOERROR", "(TCP)"} {
		if !strings.Contains(out, want) {
			t.Errorf("kdig output lacks %q\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^web-server-service\.default\.svc\.cluster\.local\.\s+\d+\s+IN\s+A\s+10\.96\.0\.100$`).MatchString(out) {
		t.Errorf("no A 10.96.0.100 in the answer\n%s", out)
	}
	// A client that trusts another CA must fail the handshake.
	_, otherCA, _, _ := tlsFiles(t)
	out, code, _ = runCmd(10*time.Second, "kdig", "@"+host, "-p", port, "+tls-ca="+otherCA, "+tls-hostname=dns.test",
		"web-server-service.default.svc.cluster.local", "A")
	if code == 0 && strings.Contains(out, "status: NOERROR") {
		t.Errorf("kdig trusting another CA got an answer\n%s", out)
	}
}

// TestTLSMissingCertRefusesStart: the binary exits with an error naming
// the missing file.
func TestTLSMissingCertRefusesStart(t *testing.T) {
	_, _, _, keyFile := tlsFiles(t)
	missing := filepath.Join(t.TempDir(), "absent.pem")
	port := freePort(t)
	out, code, err := runCmd(20*time.Second, serverBin, append(standardArgs(copyZones(t), port),
		"--tls-listen", "127.0.0.1:0", "--tls-cert-file", missing, "--tls-key-file", keyFile)...)
	if err != nil || code == 0 {
		t.Fatalf("exit %d %v, want a refused start\n%s", code, err, out)
	}
	if !strings.Contains(out, "tls_cert_file "+missing) {
		t.Fatalf("the error does not name %s\n%s", missing, out)
	}
}

// TestForwardOverTLS forwards through the binary to a local DNS over TLS
// upstream, trusted through SSL_CERT_FILE (Go's system roots), and checks
// that queries share one connection.
func TestForwardOverTLS(t *testing.T) {
	requireTools(t, "dig")
	ca, caFile, _, _ := tlsFiles(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.ServerConfig(t, "dns.test"))
	if err != nil {
		t.Fatal(err)
	}
	var conns, queries atomic.Int64
	counted := &countingLn{Listener: ln, n: &conns}
	up := &dns.Server{Net: "tcp-tls", Listener: counted, MaxTCPQueries: -1, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN A 192.0.2.77")
		m.Answer = append(m.Answer, rr)
		w.WriteMsg(m)
	})}
	go up.ActivateAndServe()
	t.Cleanup(func() { up.Shutdown() })
	dir := copyZones(t)
	s := launch(t, launchOpts{dir: dir, args: func(port int) ([]string, []string) {
		args := standardArgs(dir, port)
		for i, a := range args {
			if a == noForwarding {
				args[i] = "--upstreams=tls://" + ln.Addr().String() + "#dns.test"
			}
		}
		return args, []string{"SSL_CERT_FILE=" + caFile}
	}})
	for i := range 5 {
		name := fmt.Sprintf("n%d.example.org", i)
		r := s.dig(t, name, "A")
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", name+". 60 IN A 192.0.2.77")
	}
	if q, c := queries.Load(), conns.Load(); q != 5 || c != 1 {
		t.Fatalf("upstream: %d queries on %d connections, want 5 on 1", q, c)
	}
}

type countingLn struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingLn) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// TestTLSCertRotationWithoutRestart swaps the certificate folder the way a
// Kubernetes secret volume does (a symlink replaced atomically) under the
// running binary: the next handshakes show the new certificate.
func TestTLSCertRotationWithoutRestart(t *testing.T) {
	ca := testtls.NewCA(t)
	dir := t.TempDir()
	for i, v := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o700); err != nil {
			t.Fatal(err)
		}
		ca.IssueFiles(t, filepath.Join(dir, v), "dns.test", int64(100+i))
	}
	link := filepath.Join(dir, "current")
	if err := os.Symlink("v1", link); err != nil {
		t.Fatal(err)
	}
	s, tlsAddr := startTLSServer(t, filepath.Join(link, "cert.pem"), filepath.Join(link, "key.pem"))
	serial := func() (int64, error) {
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: ca.Pool(), ServerName: "dns.test"})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
	}
	if n, err := serial(); err != nil || n != 100 {
		t.Fatalf("serial %d %v, want 100", n, err)
	}
	pid := s.Cmd.Process.Pid
	next := filepath.Join(dir, "next")
	if err := os.Symlink("v2", next); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, link); err != nil {
		t.Fatal(err)
	}
	// The files are looked at on a handshake at most once a second.
	eventually(t, 5*time.Second, "the new certificate served", func() (bool, string) {
		n, err := serial()
		return err == nil && n == 101, fmt.Sprintf("serial %d, err %v", n, err)
	})
	if s.exited() || s.Cmd.Process.Pid != pid {
		t.Fatal("the server restarted")
	}
	if n := strings.Count(s.stderr(), "TLS certificate loaded"); n != 2 {
		t.Errorf("%d loads logged, want 2 (start and rotation)\n%s", n, tail(s.stderr(), 4000))
	}
}

// TestTLSHandshakeFloodKeepsUDPAnswering floods the binary's TLS port with
// connections that never say hello, beyond max_tcp_conns, while dig asks
// over UDP: every UDP query is answered on dig's first try.
func TestTLSHandshakeFloodKeepsUDPAnswering(t *testing.T) {
	requireTools(t, "dig")
	_, _, certFile, keyFile := tlsFiles(t)
	s, tlsAddr := startTLSServer(t, certFile, keyFile, "--max-tcp-conns", "16")
	stop := make(chan struct{})
	flooded := make(chan struct{})
	var opened atomic.Int64
	go func() {
		defer close(flooded)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.DialTimeout("tcp", tlsAddr, time.Second)
			if err != nil {
				continue
			}
			opened.Add(1)
			held = append(held, c)
			if len(held) > 2000 {
				held[0].Close()
				held = held[1:]
			}
		}
	}()
	eventually(t, 10*time.Second, "the TLS connection limit reached", func() (bool, string) {
		return strings.Contains(s.stderr(), "limit=16 tls=true"), fmt.Sprintf("%d connections opened", opened.Load())
	})
	for i := range 20 {
		r := s.dig(t, "web-server-service.default.svc.cluster.local", "A", "+tries=1")
		r.wantStatus(t, "NOERROR")
		if len(r.answer) != 1 {
			t.Fatalf("UDP query %d during the flood: %s", i, r)
		}
	}
	close(stop)
	<-flooded
	t.Logf("%d flood connections opened", opened.Load())
}
