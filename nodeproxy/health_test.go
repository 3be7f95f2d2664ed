package nodeproxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestProxyHealthHTTP checks /healthz and /livez as kube-proxy answers
// them: a change waiting past the timeout makes both 503; an ineligible
// node makes only /healthz 503.
func TestProxyHealthHTTP(t *testing.T) {
	h := NewProxyHealth(time.Minute)
	now := time.Unix(1_800_000_000, 0)
	h.now = func() time.Time { return now }
	get := func(path string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: %v in %q", path, err, rec.Body)
		}
		return rec.Code, body
	}
	check := func(what string, healthz, livez int) {
		t.Helper()
		if code, _ := get("/healthz"); code != healthz {
			t.Errorf("%s: /healthz %d, want %d", what, code, healthz)
		}
		if code, _ := get("/livez"); code != livez {
			t.Errorf("%s: /livez %d, want %d", what, code, livez)
		}
	}
	check("starting", 200, 200)
	h.QueuedUpdate()
	now = now.Add(59 * time.Second)
	check("change waiting, not late", 200, 200)
	now = now.Add(2 * time.Second)
	check("change late", 503, 503)
	h.Updated()
	check("synced", 200, 200)
	h.SetNodeEligible(false)
	check("node being deleted", 503, 200)
	if _, body := get("/healthz"); body["nodeEligible"] != false {
		t.Errorf("/healthz body %v: nodeEligible not false", body)
	}
}
