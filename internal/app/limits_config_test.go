package app

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestLimitKeys(t *testing.T) {
	c, err := LoadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxTCPConns != 1024 || c.TCPIdleTimeout != 10*time.Second || c.MaxForwardInFlight != 1000 ||
		c.RRL.ResponsesPerSecond != 0 || c.RRL.Slip != 2 || c.RRL.Window != 15*time.Second || len(c.TransferFrom) != 0 {
		t.Fatalf("defaults: %+v", c)
	}
	file := writeConfig(t, "max_tcp_conns: 16\ntcp_idle_timeout: 3s\nmax_forward_in_flight: 50\n"+
		"rrl_responses_per_second: 20\nrrl_slip: 3\nrrl_window: 5s\ntransfer_from: [192.0.2.0/24, '2001:db8::/32']\n")
	c, err = LoadConfig([]string{"--config", file})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxTCPConns != 16 || c.TCPIdleTimeout != 3*time.Second || c.MaxForwardInFlight != 50 ||
		c.RRL.ResponsesPerSecond != 20 || c.RRL.Slip != 3 || c.RRL.Window != 5*time.Second ||
		len(c.TransferFrom) != 2 || c.TransferFrom[0] != netip.MustParsePrefix("192.0.2.0/24") {
		t.Fatalf("from the file: %+v", c)
	}
	for _, bad := range []struct{ args []string }{
		{[]string{"--max-tcp-conns", "0"}},
		{[]string{"--tcp-idle-timeout", "forever"}},
		{[]string{"--tcp-idle-timeout", "0s"}},
		{[]string{"--max-forward-in-flight", "-1"}},
		{[]string{"--rrl-responses-per-second", "-5"}},
		{[]string{"--rrl-slip", "11"}},
		{[]string{"--rrl-window", "2h"}},
		{[]string{"--transfer-from", "10.0.0.0/33"}},
	} {
		key := strings.ReplaceAll(strings.TrimPrefix(bad.args[0], "--"), "-", "_")
		if _, err := LoadConfig(bad.args); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%v: error %v, want it to name %s", bad.args, err, key)
		}
	}
}

func TestMemoryLimitKey(t *testing.T) {
	for _, c := range []struct {
		value string
		want  int64
	}{{"", -1}, {"0", math.MaxInt64}, {"100MiB", 100 << 20}, {"1GiB", 1 << 30}, {"20971520", 20 << 20}, {"64 MiB", 64 << 20}} {
		got, err := memoryLimit(c.value)
		if err != nil || got != c.want {
			t.Errorf("memory_limit %q: %d, %v; want %d", c.value, got, err, c.want)
		}
	}
	for _, bad := range []string{"100MB", "-1", "1MiB", "lots", "2000GiB"} {
		if _, err := memoryLimit(bad); err == nil || !strings.Contains(err.Error(), "memory_limit") {
			t.Errorf("memory_limit %q: err %v, want one naming the key", bad, err)
		}
	}
	c, err := LoadConfig([]string{"--memory-limit", "80MiB"})
	if err != nil || c.MemoryLimit != 80<<20 {
		t.Fatalf("--memory-limit 80MiB: %+v, %v", c, err)
	}
}
