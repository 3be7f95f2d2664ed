package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// answerTTL returns the TTL of the single A record dig gets for name.
func answerTTL(t *testing.T, s *server, name string) uint32 {
	t.Helper()
	r := s.dig(t, name, "A")
	r.wantStatus(t, "NOERROR")
	if len(r.answer) != 1 {
		t.Fatalf("%s A: %d answer records, want 1\n%s", name, len(r.answer), r)
	}
	return r.answer[0].Header().Ttl
}

// TestConfigFile starts the server with nothing but --config.
func TestConfigFile(t *testing.T) {
	requireTools(t, "dig")
	dir := copyZones(t)
	cfg := filepath.Join(t.TempDir(), "clusterdns.yaml")
	s := launch(t, launchOpts{dir: dir, args: func(port int) ([]string, []string) {
		text := fmt.Sprintf("listen: 127.0.0.1:%d\nzones_dir: %s\ndomains: [cluster.local]\nttl: 9\nnegative_ttl: 11\nlog_level: debug\nupstreams: []\n", port, dir)
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{"--config", cfg}, nil
	}})
	if ttl := answerTTL(t, s, webName); ttl != 9 {
		t.Errorf("TTL %d, want 9 from the config file", ttl)
	}
	r := s.dig(t, "nothere.default.svc.cluster.local", "A")
	r.wantStatus(t, "NXDOMAIN")
	if len(r.authority) != 1 || r.authority[0].Header().Ttl != 11 {
		t.Errorf("negative answer's SOA TTL: want 11 from the config file\n%s", r)
	}
	// upstreams: [] in the file turns forwarding off.
	s.dig(t, "www.example.org", "A").wantStatus(t, "REFUSED")
	// The zones folder of the file is the one served (not the embedded
	// example): a service only it has.
	big := bigServiceYAML(3)
	if err := os.WriteFile(filepath.Join(dir, "big.yaml"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	s.waitAnswer(t, bigFQDN, "A", bigIP(0), bigIP(1), bigIP(2))
}

// TestEnvironment starts the server configured by CLUSTERDNS_* variables
// only; a flag still wins over the environment.
func TestEnvironment(t *testing.T) {
	requireTools(t, "dig")
	dir := copyZones(t)
	s := launch(t, launchOpts{dir: dir, args: func(port int) ([]string, []string) {
		return []string{"--ttl", "17", noForwarding}, []string{
			fmt.Sprintf("CLUSTERDNS_LISTEN=127.0.0.1:%d", port),
			"CLUSTERDNS_ZONES_DIR=" + dir,
			"CLUSTERDNS_TTL=13",
			"CLUSTERDNS_NEGATIVE_TTL=" + fmt.Sprint(negativeTTL),
		}
	}})
	if ttl := answerTTL(t, s, webName); ttl != 17 {
		t.Errorf("TTL %d, want 17 from --ttl (over CLUSTERDNS_TTL=13)", ttl)
	}
	r := s.dig(t, "nothere.default.svc.cluster.local", "A")
	r.wantNegative(t, "NXDOMAIN", "cluster.local")
	s.dig(t, "www.example.org", "A").wantStatus(t, "REFUSED")
}

// TestEmbeddedExampleAndJSONLogs starts the server without --zones-dir: it
// serves the embedded example with the default TTL of 5 s; with
// --log-format json every log line is a JSON object.
func TestEmbeddedExampleAndJSONLogs(t *testing.T) {
	requireTools(t, "dig")
	s := launch(t, launchOpts{args: func(port int) ([]string, []string) {
		return []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--log-format", "json", "--log-level", "debug", noForwarding}, nil
	}})
	s.wantAnswer(t, webName, "A", "10.96.0.100")
	s.wantAnswer(t, "cassandra-0.cassandra.data.svc.cluster.local", "A", "10.244.1.20")
	s.wantAnswer(t, wwwName, "A", "127.0.0.80")
	if ttl := answerTTL(t, s, webName); ttl != 5 {
		t.Errorf("TTL %d, want the default 5", ttl)
	}
	log := s.stderr()
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n++
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("log line is not JSON: %q: %v", l, err)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := m[k]; !ok {
				t.Errorf("log line without %q: %s", k, l)
			}
		}
	}
	if n == 0 {
		t.Errorf("nothing logged at debug level")
	}
}
