package app

import (
	"slices"
	"strings"
	"testing"
)

func TestReverseZonesKey(t *testing.T) {
	c, err := LoadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.ReverseZones) != 0 {
		t.Fatalf("default reverse_zones %q, want none", c.ReverseZones)
	}
	c, err = LoadConfig([]string{"--config", writeConfig(t, "reverse_zones: [10.96.0.0/12, ip6.arpa]\n")})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.ReverseZones, []string{"10.96.0.0/12", "ip6.arpa"}) {
		t.Fatalf("from the file: %q", c.ReverseZones)
	}
	c, err = LoadConfig([]string{"--reverse-zones", "in-addr.arpa,fd00::/108"})
	if err != nil || !slices.Equal(c.ReverseZones, []string{"in-addr.arpa", "fd00::/108"}) {
		t.Fatalf("from the flag: %q, %v", c.ReverseZones, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "1.2.3.4.5.in-addr.arpa"} {
		_, err := LoadConfig([]string{"--reverse-zones", bad})
		if err == nil || !strings.Contains(err.Error(), "reverse_zones") {
			t.Errorf("%q: error %v, want one naming reverse_zones", bad, err)
		}
	}
}
