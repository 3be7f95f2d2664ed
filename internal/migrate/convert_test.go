package migrate

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .golden files from the current output (review the diff!)")

// render is what `clusterdns import-*` prints: the YAML, then the findings
// and whether the import is complete.
func render(t *testing.T, r *Result) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteYAML(&b); err != nil {
		t.Fatal(err)
	}
	b.WriteString("--- findings\n")
	for _, f := range r.Findings {
		fmt.Fprintln(&b, f)
	}
	fmt.Fprintf(&b, "--- partial: %v\n", r.Partial())
	return b.String()
}

// TestCorefileGolden converts every testdata/corefile/*.Corefile and
// compares the output with its .golden file (each was checked by hand
// against the CoreDNS plugin documentation when written).
func TestCorefileGolden(t *testing.T) {
	t.Setenv("CLUSTERDNS_TEST_UPSTREAM", "10.9.9.9")
	t.Setenv("CLUSTERDNS_TEST_UPSTREAM2", "10.9.9.8")
	files, err := filepath.Glob("testdata/corefile/*.Corefile")
	if err != nil || len(files) < 12 {
		t.Fatalf("want a dozen test Corefiles, found %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := ImportCorefile(f)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, strings.TrimSuffix(f, ".Corefile")+".golden", render(t, r))
		})
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestKubeadmComplete: the kubeadm default converts with notes only.
func TestKubeadmComplete(t *testing.T) {
	r, err := ImportCorefile("testdata/corefile/kubeadm.Corefile")
	if err != nil {
		t.Fatal(err)
	}
	if r.Partial() {
		t.Fatalf("kubeadm Corefile partial:\n%s", render(t, r))
	}
	for key, want := range map[string]string{
		"domains": "[cluster.local]", "pods": "insecure", "ttl": "30", "negative_ttl": "30",
		"upstreams": "[/etc/resolv.conf]", "max_forward_in_flight": "1000", "cache_max_ttl": "30s",
		"metrics_listen": ":9153", "health_listen": ":8080", "lame_duck": "5s", "answer_order": "round_robin",
	} {
		v, ok := r.Get(key)
		if !ok || fmt.Sprint(v) != want {
			t.Errorf("%s = %v (set %v), want %s", key, v, ok, want)
		}
	}
}

func TestUnsupportedIsPartial(t *testing.T) {
	r, err := ImportCorefile("testdata/corefile/unsupported.Corefile")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Partial() {
		t.Fatal("not partial")
	}
	// Every refused directive is named with its line.
	text := render(t, r)
	for _, want := range []string{
		"unsupported.Corefile:3: not converted: debug",
		"unsupported.Corefile:4: not converted: dnssec",
		"unsupported.Corefile:5: not converted: template",
		"unsupported.Corefile:9: not converted: fallthrough",
		"unsupported.Corefile:10: not converted: noendpoints",
		"unsupported.Corefile:12: not converted: rewrite type ANY HINFO",
		"unsupported.Corefile:15: not converted: except",
		"unsupported.Corefile:18: not converted: disable denial",
		"unsupported.Corefile:20: not converted: loadbalance weighted",
		"unsupported.Corefile:21: not converted: file",
		"unsupported.Corefile:24: not converted: server block .:5353",
		"unsupported.Corefile:27: not converted: server block tls://.:853",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
	// forward to tls:// upstreams with tls_servername is converted.
	if want := "tls://1.1.1.1:853#cloudflare-dns.com"; !strings.Contains(text, want) {
		t.Errorf("missing %q in\n%s", want, text)
	}
}
