package health

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

func TestEndpoints(t *testing.T) {
	var synced atomic.Bool
	s, err := Listen("127.0.0.1:0", synced.Load, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	base := "http://" + s.Addr().String()

	check := func(path string, wantCode int, wantBody string) {
		t.Helper()
		if code, body := get(t, base+path); code != wantCode || body != wantBody {
			t.Errorf("GET %s = %d %q, want %d %q", path, code, body, wantCode, wantBody)
		}
	}
	check("/healthz", 200, "ok")
	check("/ready", 503, "not synced")
	synced.Store(true)
	check("/ready", 200, "ready")
	s.Drain()
	check("/ready", 503, "shutting down")
	check("/healthz", 200, "ok")
	if code, _ := get(t, base+"/other"); code != 404 {
		t.Errorf("GET /other = %d, want 404", code)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestListenRefusesATakenPort(t *testing.T) {
	s, err := Listen("127.0.0.1:0", func() bool { return true }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Listen(s.Addr().String(), func() bool { return true }, nil); err == nil {
		t.Fatal("second Listen on the same address succeeded")
	}
}

// While serving, the server times its own /healthz once a second, as
// CoreDNS's health plugin does.
func TestSelfCheckMetrics(t *testing.T) {
	s, err := Listen("127.0.0.1:0", func() bool { return true }, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var probes uint64
		failures := -1.0
		for _, mf := range mfs {
			switch mf.GetName() {
			case "coredns_health_request_duration_seconds":
				probes = mf.GetMetric()[0].GetHistogram().GetSampleCount()
			case "coredns_health_request_failures_total":
				failures = mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		if probes >= 2 {
			if failures != 0 {
				t.Errorf("failures = %v, want 0 while /healthz answers", failures)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d self-checks in 5 s, want 2 or more (one a second)", probes)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
