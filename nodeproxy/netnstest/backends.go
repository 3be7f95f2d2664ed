package netnstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// HealthzPath is what the HTTP backends answer.
const HealthzPath = "/api/v1/healthz"

// Healthz is the backends' answer.
type Healthz struct {
	Status struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"status"`
	Data    string `json:"data"`
	Backend string `json:"backend"`
	// Client is the source address the Go backend saw (the others leave
	// it out).
	Client string `json:"client,omitempty"`
}

// roleEnv selects what the test binary does when started again by a test
// (see RunRoleIfRequested).
const roleEnv = "NETNSTEST_ROLE"

// RunRoleIfRequested lets the test binary double as the Go backend and
// client: call it first in TestMain. When the process was started by
// StartGoHTTP, StartGoUDP or the client helpers it does that job and
// exits; otherwise it returns at once.
func RunRoleIfRequested() {
	role := os.Getenv(roleEnv)
	if role == "" {
		return
	}
	var err error
	switch role {
	case "http":
		err = serveHTTP(os.Getenv("NETNSTEST_NAME"), os.Getenv("NETNSTEST_ADDR"))
	case "udp":
		err = serveUDP(os.Getenv("NETNSTEST_NAME"), os.Getenv("NETNSTEST_ADDR"))
	case "http-get":
		n, _ := strconv.Atoi(os.Getenv("NETNSTEST_COUNT"))
		err = httpGets(os.Getenv("NETNSTEST_URL"), n, false)
	case "http-get-who":
		n, _ := strconv.Atoi(os.Getenv("NETNSTEST_COUNT"))
		err = httpGets(os.Getenv("NETNSTEST_URL"), n, true)
	case "sctp":
		port, _ := strconv.Atoi(os.Getenv("NETNSTEST_ADDR"))
		err = serveSCTP(os.Getenv("NETNSTEST_NAME"), port)
	case "sctp-ask":
		err = askSCTP(os.Getenv("NETNSTEST_ADDR"))
	case "udp-ask":
		err = udpAsk(os.Getenv("NETNSTEST_ADDR"), os.Getenv("NETNSTEST_LOCAL"))
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func healthzBody(name, client string) []byte {
	var h Healthz
	h.Status.Msg, h.Data, h.Backend, h.Client = "success", "success", name, client
	b, _ := json.Marshal(h)
	return b
}

func serveHTTP(name, addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+HealthzPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		client := ""
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			client = ap.Addr().Unmap().String()
		}
		w.Write(healthzBody(name, client))
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
}

// serveUDP answers every datagram with the backend's name.
func serveUDP(name, addr string) error {
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		_, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		c.WriteTo([]byte(name), from)
	}
}

// httpGets makes n GETs, each on a new connection, printing one line per
// request: the backend's name (with who, followed by the client address
// the backend saw), or "ERR reason".
func httpGets(url string, n int, who bool) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range n {
		resp, err := client.Get(url)
		if err != nil {
			fmt.Println("ERR", err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var h Healthz
		if err := json.Unmarshal(body, &h); err != nil || h.Data != "success" || h.Status.Msg != "success" {
			fmt.Printf("ERR bad answer %q\n", body)
			continue
		}
		if who {
			fmt.Println(h.Backend, h.Client)
		} else {
			fmt.Println(h.Backend)
		}
	}
	return nil
}

// udpAsk sends one datagram from local to addr and prints the answer.
func udpAsk(addr, local string) error {
	la, err := net.ResolveUDPAddr("udp", local)
	if err != nil {
		return err
	}
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	c, err := net.DialUDP("udp", la, ra)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("who")); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	fmt.Println(string(buf[:n]))
	return nil
}

func self(tp *Topology) string {
	exe, err := os.Executable()
	if err != nil {
		tp.t.Fatalf("test binary: %v", err)
	}
	return exe
}

// StartGoHTTP runs the Go HTTP backend named name in pod p on port.
func (tp *Topology) StartGoHTTP(p *Pod, name string, port int) *Process {
	return tp.Start(p.NS, []string{roleEnv + "=http", "NETNSTEST_NAME=" + name, "NETNSTEST_ADDR=:" + strconv.Itoa(port)}, self(tp))
}

// StartGoUDP runs a UDP backend that answers its name, in pod p on port.
func (tp *Topology) StartGoUDP(p *Pod, name string, port int) *Process {
	return tp.Start(p.NS, []string{roleEnv + "=udp", "NETNSTEST_NAME=" + name, "NETNSTEST_ADDR=:" + strconv.Itoa(port)}, self(tp))
}

const pythonBackend = `import http.server, json, sys
name, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/api/v1/healthz":
            self.send_error(404)
            return
        body = json.dumps({"status": {"code": 0, "msg": "success"}, "data": "success", "backend": name}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", port), H).serve_forever()
`

const nodeBackend = `const http = require('http');
const [name, port] = process.argv.slice(2);
http.createServer((req, res) => {
  if (req.method !== 'GET' || req.url !== '/api/v1/healthz') { res.writeHead(404); res.end(); return; }
  const body = JSON.stringify({status: {code: 0, msg: 'success'}, data: 'success', backend: name});
  res.writeHead(200, {'Content-Type': 'application/json'});
  res.end(body);
}).listen(+port, '0.0.0.0');
`

func (tp *Topology) script(name, body string) string {
	dir := tp.t.TempDir()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		tp.t.Fatal(err)
	}
	return path
}

// StartPythonHTTP runs the Python (http.server) backend in pod p on port.
func (tp *Topology) StartPythonHTTP(p *Pod, name string, port int) *Process {
	return tp.Start(p.NS, nil, "python3", tp.script("backend.py", pythonBackend), name, strconv.Itoa(port))
}

// StartNodeHTTP runs the Node.js backend in pod p on port.
func (tp *Topology) StartNodeHTTP(p *Pod, name string, port int) *Process {
	return tp.Start(p.NS, nil, "node", tp.script("backend.js", nodeBackend), name, strconv.Itoa(port))
}

// HTTPGets makes n GET requests to url from pod p, each on a new
// connection, and returns the answering backend of each ("ERR …" lines for
// failures).
func (tp *Topology) HTTPGets(p *Pod, url string, n int) []string {
	tp.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := Command(ctx, p.NS, self(tp))
	cmd.Env = append(os.Environ(), roleEnv+"=http-get", "NETNSTEST_URL="+url, "NETNSTEST_COUNT="+strconv.Itoa(n))
	out, err := cmd.Output()
	if err != nil {
		tp.t.Fatalf("http client in %s: %v", p.NS, err)
	}
	return splitLines(out)
}

// Answer is one HTTP answer: the backend that gave it and the client
// address it saw; Err is set instead for a failed request.
type Answer struct {
	Backend, Client, Err string
}

// HTTPGetsWho makes n GET requests to url from namespace ns (a pod's or
// the node's), each on a new connection, and returns who answered each
// and which source address that Go backend saw.
func (tp *Topology) HTTPGetsWho(ns, url string, n int) []Answer {
	tp.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := Command(ctx, ns, self(tp))
	cmd.Env = append(os.Environ(), roleEnv+"=http-get-who", "NETNSTEST_URL="+url, "NETNSTEST_COUNT="+strconv.Itoa(n))
	out, err := cmd.Output()
	if err != nil {
		tp.t.Fatalf("http client in %s: %v", ns, err)
	}
	var answers []Answer
	for _, l := range splitLines(out) {
		if strings.HasPrefix(l, "ERR") {
			answers = append(answers, Answer{Err: l})
			continue
		}
		b, c, _ := strings.Cut(l, " ")
		answers = append(answers, Answer{Backend: b, Client: c})
	}
	return answers
}

// UDPAsk sends one datagram to addr from pod p's local address local
// (":40000" keeps one source port, so one conntrack entry) and returns the
// answer.
func (tp *Topology) UDPAsk(p *Pod, addr, local string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := Command(ctx, p.NS, self(tp))
	cmd.Env = append(os.Environ(), roleEnv+"=udp-ask", "NETNSTEST_ADDR="+addr, "NETNSTEST_LOCAL="+local)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("udp ask %s from %s: %w: %s", addr, p.NS, err, out)
	}
	return string(bytes.TrimSpace(out)), nil
}

func splitLines(b []byte) []string {
	var out []string
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(l) > 0 {
			out = append(out, string(l))
		}
	}
	return out
}
