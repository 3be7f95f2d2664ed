package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clusterdns.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaults(t *testing.T) {
	c, err := LoadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:5353" || c.TTL != 5 || c.NegativeTTL != 5 || c.Domains[0] != "cluster.local" || c.Pods != "disabled" {
		t.Fatalf("defaults: %+v", c)
	}
}

// A flag beats the environment, which beats the file, which beats the default.
func TestConfigPrecedence(t *testing.T) {
	file := writeConfig(t, "ttl: 30\nnegative_ttl: 40\nlisten: 127.0.0.1:1111\ndomains: [a.local, b.local]\n")
	t.Setenv("CLUSTERDNS_NEGATIVE_TTL", "50")
	t.Setenv("CLUSTERDNS_LISTEN", "127.0.0.1:2222")
	c, err := LoadConfig([]string{"--config", file, "--listen", "127.0.0.1:3333"})
	if err != nil {
		t.Fatal(err)
	}
	if c.TTL != 30 {
		t.Errorf("file value: ttl %d, want 30", c.TTL)
	}
	if c.NegativeTTL != 50 {
		t.Errorf("env beats file: negative_ttl %d, want 50", c.NegativeTTL)
	}
	if c.Listen != "127.0.0.1:3333" {
		t.Errorf("flag beats env: listen %s", c.Listen)
	}
	if strings.Join(c.Domains, ",") != "a.local,b.local" {
		t.Errorf("domains from file: %v", c.Domains)
	}
}

func TestConfigRefusesBadValues(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		file string
		want string
	}{
		{args: []string{"--ttl", "99999"}, want: "ttl 99999"},
		{env: map[string]string{"CLUSTERDNS_TTL": "five"}, want: "ttl five"},
		{args: []string{"--pods", "sometimes"}, want: `pods "sometimes"`},
		{args: []string{"--listen", "nowhere"}, want: `listen "nowhere"`},
		{args: []string{"--log-level", "loud"}, want: `log_level "loud"`},
		{args: []string{"--dns-service", "kube-dns"}, want: `dns_service "kube-dns"`},
		{file: "ttl: 5\nttll: 6\n", want: `unknown key "ttll"`},
		{file: "negative_ttl: -1\n", want: "negative_ttl -1"},
		{file: "ttl: [\n", want: "config file"},
	}
	for _, c := range cases {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		args := c.args
		if c.file != "" {
			args = append(args, "--config", writeConfig(t, c.file))
		}
		_, err := LoadConfig(args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v %q: error %v, want it to name %q", c.args, c.env, c.file, err, c.want)
		}
		for k := range c.env {
			os.Unsetenv(k)
		}
	}
}
