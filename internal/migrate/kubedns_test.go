package migrate

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestKubeDNSGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/kubedns/*")
	if err != nil || len(files) == 0 {
		t.Fatal("no test ConfigMaps", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".golden") {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := ImportKubeDNS(f)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, f+".golden", render(t, r))
		})
	}
}

func TestKubeDNSBadInput(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"kind: Secret\napiVersion: v1\n", `kind "Secret"`},
		{"kind: ConfigMap\napiVersion: v1\ndata:\n  upstreamNameservers: '8.8.8.8'\n", "JSON list"},
		{"kind: ConfigMap\napiVersion: v1\ndata:\n  upstreamNameservers: '[\"dns.google\"]'\n", "IP address"},
		{"kind: ConfigMap\napiVersion: v1\ndata:\n  stubDomains: '{\"a..b\": [\"1.2.3.4\"]}'\n", "not a domain name"},
		{"kind: ConfigMap\napiVersion: v1\ndata:\n  stubDomains: '{\"corp.example\": []}'\n", "no server"},
		{"kind: ConfigMap\napiVersion: v1\ndata: [1, 2]\n", "kube-dns configmap"},
		{"kind: ConfigMap\napiVersion: v1\nbogus: 1\n", "bogus"},
	} {
		_, err := ConvertKubeDNS("cm.yaml", []byte(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one mentioning %q", c.text, err, c.want)
		}
	}
}
