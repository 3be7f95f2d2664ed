package health

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
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
