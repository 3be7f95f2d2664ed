package deploy

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// TestConfigStarts: the clusterdns built by deploy/build-binaries.sh starts
// with the config files of the base and of the node cache (an unknown key
// or a bad value would be refused), with only what cannot work on a test
// machine overridden by flags (which beat the file): the addresses, the
// Kubernetes source of the base (TestAPIServer runs it against a real
// apiserver) and the node cache's emptyDir.
func TestConfigStarts(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	bin := filepath.Join(binaries(t), "clusterdns")
	local := []string{"--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}

	documented := readmeKeys(t)
	for _, f := range []string{"base/clusterdns.yaml", "overlays/node-local/clusterdns.yaml"} {
		var cfg map[string]any
		data, err := os.ReadFile(filepath.Join(root, "deploy", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			t.Fatalf("deploy/%s: %v", f, err)
		}
		for k := range cfg {
			if !documented[k] {
				t.Logf("deploy/%s: key %s is not in README.md's configuration table (clusterdns accepts it: see the subtests)", f, k)
			}
		}
	}

	t.Run("base", func(t *testing.T) {
		p := startClusterDNS(t, bin, filepath.Join(root, "deploy", "base", "clusterdns.yaml"), append(local, "--source", "files")...)
		p.get(t, "/healthz", http.StatusOK)
		p.get(t, "/ready", http.StatusOK)
	})
	t.Run("node-local", func(t *testing.T) {
		p := startClusterDNS(t, bin, filepath.Join(root, "deploy", "overlays", "node-local", "clusterdns.yaml"), append(local, "--zones-dir", t.TempDir())...)
		p.get(t, "/ready", http.StatusOK)
		fwd := p.logged(t, "forwarding")
		stubs, _ := fwd["stub_domains"].(map[string]any)
		if servers := asStrings(stubs["cluster.local"]); !slices.Contains(servers, "tcp://"+dnsIP+":53") {
			t.Errorf("forwarding log %v: cluster.local not forwarded to %s", fwd, dnsIP)
		}
		if serving := p.logged(t, "serving"); slices.Contains(asStrings(serving["domains"]), "cluster.local") {
			t.Errorf("node cache serves cluster.local itself: %v", serving)
		}
	})
}

// clusterDNS is a clusterdns process started by startClusterDNS.
type clusterDNS struct {
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	mu     sync.Mutex
	lines  []map[string]any // JSON log records
	raw    strings.Builder
	dns    string // the "serving" address
	health string // the "health endpoints" address, if any
}

// startClusterDNS runs clusterdns --config config args... (log_format json)
// until it logs "serving"; it is stopped at the end of the test. The UDP
// port's TCP twin being taken is retried.
func startClusterDNS(t *testing.T, bin, config string, args ...string) *clusterDNS {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p, ok := tryStart(t, bin, append([]string{"--config", config, "--log-format", "json"}, args...))
		if ok {
			return p
		}
		if strings.Contains(p.log(), "listen tcp") && attempt < 3 {
			continue
		}
		t.Fatalf("clusterdns %s did not start: %v\n%s", strings.Join(p.cmd.Args[1:], " "), p.err, p.log())
	}
}

func tryStart(t *testing.T, bin string, args []string) (*clusterDNS, bool) {
	t.Helper()
	p := &clusterDNS{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			var rec map[string]any
			p.mu.Lock()
			p.raw.WriteString(sc.Text() + "\n")
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				p.lines = append(p.lines, rec)
				switch rec["msg"] {
				case "health endpoints":
					p.health, _ = rec["addr"].(string)
				case "serving":
					p.dns, _ = rec["addr"].(string)
					once.Do(func() { close(serving) })
				}
			}
			p.mu.Unlock()
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	select {
	case <-serving:
		t.Cleanup(p.stop)
		return p, true
	case <-p.done:
		return p, false
	case <-time.After(20 * time.Second):
		p.stop()
		t.Fatalf("clusterdns neither served nor exited in 20 s:\n%s", p.log())
		return nil, false
	}
}

func (p *clusterDNS) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *clusterDNS) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw.String()
}

// logged returns the first log record with message msg.
func (p *clusterDNS) logged(t *testing.T, msg string) map[string]any {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.lines {
		if r["msg"] == msg {
			return r
		}
	}
	t.Fatalf("no %q in the log:\n%s", msg, p.raw.String())
	return nil
}

// get polls GET path on the health address until it answers want (10 s).
func (p *clusterDNS) get(t *testing.T, path string, want int) {
	t.Helper()
	p.mu.Lock()
	addr := p.health
	p.mu.Unlock()
	if addr == "" {
		t.Fatalf("no health endpoints in the log:\n%s", p.log())
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := hc.Get("http://" + addr + path)
		var got string
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			got = resp.Status + " " + strings.TrimSpace(string(body))
		} else {
			got = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %s, want %d\n%s", path, got, want, p.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
