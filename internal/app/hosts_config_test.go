package app

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestHostsRewriteKeys: the new keys are read, and bad values refused.
func TestHostsRewriteKeys(t *testing.T) {
	c, err := LoadConfig([]string{"--config", writeConfig(t, "hosts: ['10.0.0.1 db.corp.example']\nhosts_file: /nonexistent/hosts\nhosts_ttl: 60\nhosts_zones: [corp.example]\nhosts_fallthrough: false\nhosts_reload: 0s\nrewrite_name: ['suffix .a.example .b.example']\n")})
	if err != nil {
		t.Fatal(err)
	}
	h := c.Hosts
	if len(h.Entries) != 1 || h.File != "/nonexistent/hosts" || h.TTL != 60 || h.Fallthrough || h.Reload != 0 || len(h.Zones) != 1 || len(c.RewriteName) != 1 {
		t.Fatalf("%+v %v", h, c.RewriteName)
	}
	if d, _ := LoadConfig(nil); !d.Hosts.Fallthrough || d.Hosts.TTL != 3600 || d.Hosts.Reload != 5*time.Second {
		t.Fatalf("defaults: %+v", d.Hosts)
	}
	for body, want := range map[string]string{
		"hosts: ['db.corp.example']\n":   "hosts entry",
		"hosts_ttl: 100000\n":            "hosts_ttl",
		"hosts_reload: soon\n":           "hosts_reload",
		"rewrite_name: ['glob a b']\n":   "rewrite_name",
		"rewrite_name: ['regex ([ b']\n": "rewrite_name",
		"hosts_zones: ['bad..zone']\n":   "hosts zone",
	} {
		if _, err := LoadConfig([]string{"--config", writeConfig(t, body)}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one naming %s", body, err, want)
		}
	}
}

// TestOwnAddress: resolv.conf servers that are this server are dropped
// (what the imported `loop` relies on), also when it listens on every
// address as a Corefile's `.:53` does.
func TestOwnAddress(t *testing.T) {
	for _, c := range []struct {
		listen, server string
		own            bool
	}{
		{"127.0.0.1:5353", "127.0.0.1:5353", true},
		{"127.0.0.1:5353", "127.0.0.1:53", false},
		{"127.0.0.1:53", "127.0.0.53:53", false},
		{":53", "127.0.0.53:53", true},
		{":53", "[::1]:53", true},
		{":53", "10.0.0.2:53", false},
		{"0.0.0.0:53", "127.0.0.1:53", true},
		{"[::]:53", "127.0.0.1:5353", false},
		{"10.96.0.10:53", "10.96.0.10:53", true},
	} {
		if got := ownAddress(c.listen, netip.MustParseAddrPort(c.server)); got != c.own {
			t.Errorf("listen %s, server %s: own %v, want %v", c.listen, c.server, got, c.own)
		}
	}
}
