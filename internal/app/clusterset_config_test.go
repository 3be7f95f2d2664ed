package app

import (
	"strings"
	"testing"
)

func TestClusterSetZoneKey(t *testing.T) {
	c, err := LoadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClusterSetZone != "clusterset.local" {
		t.Fatalf("default clusterset_zone %q", c.ClusterSetZone)
	}
	c, err = LoadConfig([]string{"--config", writeConfig(t, "clusterset_zone: \"\"\n")})
	if err != nil || c.ClusterSetZone != "" {
		t.Fatalf("empty in the file: %q, %v", c.ClusterSetZone, err)
	}
	c, err = LoadConfig([]string{"--clusterset-zone", "MCS.Example."})
	if err != nil || c.ClusterSetZone != "mcs.example" {
		t.Fatalf("from the flag: %q, %v", c.ClusterSetZone, err)
	}
	for _, bad := range [][]string{{"--clusterset-zone", "a..b"}, {"--clusterset-zone", "under_score.local"}, {"--clusterset-zone", "cluster.local"}} {
		_, err := LoadConfig(bad)
		if err == nil || !strings.Contains(err.Error(), "clusterset_zone") {
			t.Errorf("%q: error %v, want one naming clusterset_zone", bad, err)
		}
	}
}
