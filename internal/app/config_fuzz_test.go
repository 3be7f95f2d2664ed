package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadConfig: any contents of a --config file are accepted or refused
// with an error naming the file or the key; loadConfig never panics, and
// what it accepts is valid (the checks main relies on hold).
func FuzzLoadConfig(f *testing.F) {
	for _, s := range []string{
		"ttl: 30\nnegative_ttl: 40\nlisten: 127.0.0.1:1111\ndomains: [a.local, b.local]\n",
		"upstreams: [127.0.0.1:53, 'tcp://127.0.0.1:54']\nstub_domains:\n  corp.example: [10.0.0.53, 10.0.0.54]\n  a.b.c: 10.0.0.1\n",
		"recursion_from: [127.0.0.0/8, '::1/128']\ncache_size: 100\nserve_stale: 0s\nprefetch: 0\n",
		"max_tcp_conns: 10\ntcp_idle_timeout: 2s\nmax_forward_in_flight: 5\nrrl_responses_per_second: 5\nrrl_slip: 2\nrrl_window: 15s\ntransfer_from: [10.0.0.0/8]\n",
		"answer_order: random\nanswer_order_zones: ['.=off', 'cluster.local=round_robin']\npods: verified\nautopath: true\n",
		"ttl: [\n",
		"{\"ttl\": 5, \"listen\": \"[::1]:53\"}",
		"ttl: 1e3\nnamespaces: [default, kube-system]\nlog_level: debug\nlog_format: json\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "clusterdns.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig([]string{"--config", p})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if len(c.Domains) == 0 || c.TTL > 3600 || c.NegativeTTL > 3600 || c.CacheSize < 0 || c.ForwardTimeout <= 0 {
			t.Fatalf("accepted an invalid configuration: %+v", c)
		}
		for _, d := range c.Domains {
			if strings.TrimSpace(d) == "" {
				t.Fatalf("empty domain accepted: %q", c.Domains)
			}
		}
	})
}
