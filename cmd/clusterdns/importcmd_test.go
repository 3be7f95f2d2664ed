package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/internal/app"
)

// TestImportOutputsLoad runs the import commands over every test Corefile
// and ConfigMap of internal/migrate and loads each output with the
// server's own configuration loader: every key the import writes exists
// and every value is accepted.
func TestImportOutputsLoad(t *testing.T) {
	t.Setenv("CLUSTERDNS_TEST_UPSTREAM", "10.9.9.9")
	t.Setenv("CLUSTERDNS_TEST_UPSTREAM2", "10.9.9.8")
	corefiles, _ := filepath.Glob("../../internal/migrate/testdata/corefile/*.Corefile")
	configmaps, _ := filepath.Glob("../../internal/migrate/testdata/kubedns/*")
	configmaps = slices.DeleteFunc(configmaps, func(s string) bool { return strings.HasSuffix(s, ".golden") })
	if len(corefiles) < 12 || len(configmaps) < 3 {
		t.Fatalf("test inputs: %d Corefiles, %d ConfigMaps", len(corefiles), len(configmaps))
	}
	run := func(cmd, path string) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var out, errs bytes.Buffer
			code := runImport(cmd, []string{"--allow-partial", path}, nil, &out, &errs)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs.String())
			}
			cfg := filepath.Join(t.TempDir(), "clusterdns.yaml")
			if err := os.WriteFile(cfg, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := app.LoadConfig([]string{"--config", cfg}); err != nil {
				t.Fatalf("the server refuses the imported configuration: %v\n%s", err, out.String())
			}
		})
	}
	for _, f := range corefiles {
		run("import-corefile", f)
	}
	for _, f := range configmaps {
		run("import-kube-dns", f)
	}
}

// TestImportKubeadmValues: the kubeadm Corefile's import, loaded, gives
// the values the Corefile says.
func TestImportKubeadmValues(t *testing.T) {
	var out, errs bytes.Buffer
	if code := runImport("import-corefile", []string{"../../internal/migrate/testdata/corefile/kubeadm.Corefile"}, nil, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	cfg := filepath.Join(t.TempDir(), "clusterdns.yaml")
	if err := os.WriteFile(cfg, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := app.LoadConfig([]string{"--config", cfg})
	if err != nil {
		t.Fatal(err)
	}
	if c.TTL != 30 || c.NegativeTTL != 30 || c.Pods != "insecure" || c.Source != "kubernetes" ||
		strings.Join(c.Upstreams, ",") != "/etc/resolv.conf" || c.MaxForwardInFlight != 1000 ||
		c.CacheMaxTTL != 30*time.Second || c.CacheMaxNegTTL != 30*time.Second || c.Prefetch != 0 || c.ServeStale != 0 ||
		c.MetricsListen != ":9153" || c.HealthListen != ":8080" || c.LameDuck != 5*time.Second || c.AnswerOrder != "round_robin" || c.Listen != ":53" {
		t.Fatalf("loaded: %+v", c)
	}
	for _, note := range []string{"kubeadm.Corefile:3: note: health", "kubeadm.Corefile:6: note: ready", "kubeadm.Corefile:17: note: loop"} {
		if !strings.Contains(errs.String(), note) {
			t.Errorf("stderr lacks %q:\n%s", note, errs.String())
		}
	}
}

func TestImportExitCodes(t *testing.T) {
	unsupported := "../../internal/migrate/testdata/corefile/unsupported.Corefile"
	var out, errs bytes.Buffer
	if code := runImport("import-corefile", []string{unsupported}, nil, &out, &errs); code != 1 {
		t.Fatalf("partial import: exit %d, want 1", code)
	}
	if !strings.Contains(errs.String(), "unsupported.Corefile:4: not converted: dnssec") || !strings.Contains(out.String(), "domains: [cluster.local]") {
		t.Fatalf("partial import: stdout\n%s\nstderr\n%s", out.String(), errs.String())
	}
	out.Reset()
	errs.Reset()
	if code := runImport("import-corefile", []string{"--allow-partial", unsupported}, nil, &out, &errs); code != 0 {
		t.Fatalf("--allow-partial: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "Corefile")
	if err := os.WriteFile(bad, []byte(".:53 {\n  forward . 1.1.1.1 {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errs.Reset()
	if code := runImport("import-corefile", []string{bad}, nil, &out, &errs); code != 2 || out.Len() != 0 || !strings.Contains(errs.String(), "Unexpected EOF") {
		t.Fatalf("broken Corefile: exit %d, stdout %q, stderr %q", code, out.String(), errs.String())
	}
	if code := runImport("import-kube-dns", nil, nil, &out, &errs); code != 2 {
		t.Fatalf("no file: exit %d, want 2", code)
	}
	if code := runImport("import-corefile", []string{"/nonexistent/Corefile"}, nil, &out, &errs); code != 2 {
		t.Fatalf("missing file: exit %d, want 2", code)
	}
	// "-" reads stdin.
	out.Reset()
	errs.Reset()
	in := strings.NewReader(".:53 {\n    kubernetes cluster.local\n    forward . 10.0.0.1\n    cache\n}\n")
	if code := runImport("import-corefile", []string{"-"}, in, &out, &errs); code != 0 || !strings.Contains(out.String(), "upstreams: [10.0.0.1]") || !strings.Contains(out.String(), "<stdin>:3 forward") {
		t.Fatalf("stdin: exit %d\n%s\n%s", code, out.String(), errs.String())
	}
}
