package app

import (
	"strings"
	"testing"
)

func TestTLSKeysNeedBothFiles(t *testing.T) {
	if _, err := LoadConfig([]string{"--tls-listen", "127.0.0.1:853", "--tls-cert-file", "/c.pem"}); err == nil || !strings.Contains(err.Error(), "tls_listen \"127.0.0.1:853\" needs tls_cert_file and tls_key_file") {
		t.Fatalf("tls_listen without a key: %v", err)
	}
	if _, err := LoadConfig([]string{"--tls-listen", "nonsense"}); err == nil || !strings.Contains(err.Error(), "tls_listen") {
		t.Fatalf("a bad tls_listen: %v", err)
	}
	file := writeConfig(t, "tls_listen: 127.0.0.1:853\ntls_cert_file: /c.pem\ntls_key_file: /k.pem\nupstreams: ['tls://10.0.0.1:853#dns.example']\n")
	c, err := LoadConfig([]string{"--config", file})
	if err != nil {
		t.Fatal(err)
	}
	if c.TLSListen != "127.0.0.1:853" || c.TLSCertFile != "/c.pem" || c.TLSKeyFile != "/k.pem" || c.Upstreams[0] != "tls://10.0.0.1:853#dns.example" {
		t.Fatalf("read %+v", c)
	}
	if c, err := LoadConfig(nil); err != nil || c.TLSListen != "" {
		t.Fatalf("default: tls_listen %q %v, want off", c.TLSListen, err)
	}
}
