package lbgrpc

import (
	"errors"
	"net/url"
	"testing"

	"google.golang.org/grpc/resolver"

	"github.com/clusterdns/clusterdns/lb"
)

func target(t *testing.T, s string) resolver.Target {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return resolver.Target{URL: *u}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in, server, authority string
		want                  lb.Target
	}{
		{"clusterdns:///web.default.svc.cluster.local:8080", "", "web.default.svc.cluster.local:8080",
			lb.Target{Name: "web.default.svc.cluster.local", Port: 8080}},
		{"clusterdns://127.0.0.1:5353/Web.Default.svc.cluster.local.:80", "127.0.0.1:5353", "Web.Default.svc.cluster.local.:80",
			lb.Target{Name: "web.default.svc.cluster.local", Port: 80}},
		{"clusterdns://10.96.0.10/_grpc._tcp.web.default.svc.cluster.local", "10.96.0.10:53", "web.default.svc.cluster.local",
			lb.Target{Name: "web.default.svc.cluster.local", PortName: "grpc", Proto: "tcp"}},
		{"clusterdns://[::1]/_GRPC._TCP.web.default.svc.cluster.local", "[::1]:53", "web.default.svc.cluster.local",
			lb.Target{Name: "web.default.svc.cluster.local", PortName: "grpc", Proto: "tcp"}},
	} {
		server, got, err := ParseTarget(target(t, tc.in))
		if err != nil || server != tc.server || got != tc.want {
			t.Errorf("ParseTarget(%s) = %q, %+v, %v; want %q, %+v", tc.in, server, got, err, tc.server, tc.want)
		}
		if a := (&resolverBuilder{}).OverrideAuthority(target(t, tc.in)); a != tc.authority {
			t.Errorf("authority of %s = %q, want %q", tc.in, a, tc.authority)
		}
	}
	for _, in := range []string{
		"clusterdns:///web", "clusterdns:///web:0", "clusterdns:///web:99999", "clusterdns:///_grpc.web.default",
		"clusterdns:///_._tcp.web", "clusterdns:///_grpc._.web", "clusterdns:///_grpc._tcp.", "clusterdns:///a..b:80",
		"clusterdns:///[::1]:80",
	} {
		if _, _, err := ParseTarget(target(t, in)); !errors.Is(err, ErrBadTarget) {
			t.Errorf("ParseTarget(%s): err = %v, want ErrBadTarget", in, err)
		}
	}
}

func TestParseConfig(t *testing.T) {
	cfg, err := parseConfig("clusterdns_p2c", []byte(`{"zone":"a","hashKey":"x-user","outlier":{"consecutiveFailures":5,"baseEjection":"2s","failureCodes":["INTERNAL",14]}}`))
	if err != nil {
		t.Fatal(err)
	}
	bc := cfg.balancerConfig("svc", lb.P2C())
	if bc.Zone != "a" || bc.Outlier.ConsecutiveFailures != 5 || bc.Outlier.BaseEjection.String() != "2s" || cfg.HashKey != "x-user" {
		t.Fatalf("config %+v → %+v", cfg, bc)
	}
	if m := cfg.failureMask(); m != 1<<13|1<<14 {
		t.Fatalf("failure mask %b, want INTERNAL (13) and UNAVAILABLE (14)", m)
	}
	if m := (&Config{}).failureMask(); m != 1<<14 {
		t.Fatalf("default failure mask %b, want UNAVAILABLE only", m)
	}
	for _, bad := range []string{`{"zoen":"a"}`, `{"minZoneEndpoints":-1}`, `{"outlier":{"maxEjectionPercent":101}}`,
		`{"outlier":{"failureCodes":[99]}}`, `{"outlier":{"maxEjection":"-1s"}}`, `[]`} {
		if _, err := parseConfig("clusterdns_p2c", []byte(bad)); err == nil {
			t.Errorf("config %s accepted", bad)
		}
	}
}
