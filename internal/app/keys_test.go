package app

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// The README's configuration table is the keys table, row for row: a key
// added, renamed, re-defaulted or made restart-only in one and not the
// other fails here.
func TestReadmeConfigurationTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const header = "| key | default | meaning |\n|---|---|---|\n"
	_, rest, ok := strings.Cut(string(readme), header)
	if !ok {
		t.Fatalf("README.md has no configuration table (%q)", header)
	}
	var got []string
	for _, line := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		got = append(got, line)
	}
	var want []string
	for _, k := range keys {
		name := "`" + k.name + "`"
		if k.restart != nil {
			name += " *restart*"
		}
		cells := []string{name, k.defaultShown(), k.meaning}
		line := "|"
		for _, c := range cells {
			if c == "" {
				line += " |"
			} else {
				line += " " + c + " |"
			}
		}
		want = append(want, line)
	}
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("README configuration table, row %d:\n README: %s\n table:  %s", i+1, g, w)
		}
	}
}

// Every row is complete: a flag type LoadConfig makes, a parser, help
// without markdown (pflag reads a back-quoted word as the value's name).
func TestKeysComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.name] {
			t.Errorf("key %s twice", k.name)
		}
		seen[k.name] = true
		switch k.def.(type) {
		case string, int, bool, []string:
		default:
			t.Errorf("key %s: default of type %T makes no flag", k.name, k.def)
		}
		if k.parse == nil || k.meaning == "" {
			t.Errorf("key %s: no parser or no meaning", k.name)
		}
		if strings.Contains(k.help(), "`") {
			t.Errorf("key %s: help %q keeps markdown", k.name, k.help())
		}
	}
}

// A reload names exactly the changed keys it cannot apply.
func TestRestartOnlyKeys(t *testing.T) {
	kube := []string{"--source", "kubernetes"}
	cases := []struct {
		base, next []string
		want       []string
	}{
		{next: []string{"--listen", "127.0.0.1:1"}, want: []string{"listen"}},
		{next: []string{"--source", "kubernetes"}, want: []string{"source"}},
		{next: []string{"--kubeconfig", "/k"}, want: []string{"kubeconfig"}},
		{next: []string{"--namespaces", "a,b"}, want: []string{"namespaces"}},
		{next: []string{"--sync-timeout", "1m"}, want: []string{"sync_timeout"}},
		{next: []string{"--zones-dir", "/z"}, want: []string{"zones_dir"}},
		{next: []string{"--endpoint-pod-names"}, want: []string{"endpoint_pod_names"}},
		{next: []string{"--health-listen", ""}, want: []string{"health_listen"}},
		{next: []string{"--metrics-listen", ""}, want: []string{"metrics_listen"}},
		{next: []string{"--pprof"}, want: []string{"pprof"}},
		{next: []string{"--udp-sockets", "2"}, want: []string{"udp_sockets"}},
		{next: []string{"--log-level", "debug"}, want: []string{"log_level"}},
		{next: []string{"--log-format", "json"}, want: []string{"log_format"}},
		{next: []string{"--max-tcp-conns", "9"}, want: []string{"max_tcp_conns"}},
		{next: []string{"--tcp-idle-timeout", "1s"}, want: []string{"tcp_idle_timeout"}},
		{next: []string{"--rrl-responses-per-second", "5", "--rrl-slip", "0", "--rrl-window", "1s"},
			want: []string{"rrl_responses_per_second", "rrl_slip", "rrl_window"}},
		// Reloadable keys.
		{next: []string{"--ttl", "9", "--upstream-policy", "sequential", "--answer-order", "off", "--lame-duck", "1s",
			"--memory-limit", "100MiB", "--domains", "x.local", "--query-log"}},
		// The same list spelled otherwise is no change.
		{base: []string{"--namespaces", "a,b"}, next: []string{"--namespaces", "a", "--namespaces", "b,a"}},
		// Pods and autopath start or stop the Kubernetes pod watch...
		{base: kube, next: append(slices.Clone(kube), "--pods", "verified"), want: []string{"pods"}},
		{base: kube, next: append(slices.Clone(kube), "--autopath"), want: []string{"autopath"}},
		{base: kube, next: append(slices.Clone(kube), "--pods", "insecure")},
		// ...and are read on every reload with the file source.
		{base: []string{"--source", "files"}, next: []string{"--source", "files", "--pods", "verified", "--autopath"}},
	}
	for _, c := range cases {
		old, err := LoadConfig(c.base)
		if err != nil {
			t.Fatal(err)
		}
		next, err := LoadConfig(c.next)
		if err != nil {
			t.Fatal(err)
		}
		if got := restartOnly(old, next); !slices.Equal(got, c.want) {
			t.Errorf("%v → %v: restart-only %v, want %v", c.base, c.next, got, c.want)
		}
	}
}
