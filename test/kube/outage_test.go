package kube

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestNotSyncedThenOutage follows one API server through the life of a
// clusterdns: started while the API server is down, it answers SERVFAIL
// (never NXDOMAIN) with /ready failing, and a second one with a short
// --sync-timeout serves its empty view after the timeout and says so; once
// the API server is up both sync; when it goes away the last known cluster
// keeps being served unchanged, /ready stays 200, and when it comes back the
// watches resume by themselves and a change made right then shows up.
func TestNotSyncedThenOutage(t *testing.T) {
	t.Parallel() // mostly waiting: let the other tests use the time
	start := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(start).Seconds(), what) }
	api := startAPI(t)
	k := &cluster{t: t, c: api.Client()}
	k.namespace("app")
	web := k.createService(clusterIPService("app", "web", tcpPort("http", 80)))
	k.createService(clusterIPService("app", "gone", tcpPort("http", 80)))
	name := "web.app.svc.cluster.local"
	api.StopAPIServer()
	phase("API server stopped; starting clusterdns")

	waiting := startServer(t, kubeArgs(api, "--sync-timeout", "0")...)
	bounded := startServer(t, kubeArgs(api, "--sync-timeout", "1s")...)

	// Not synced: SERVFAIL for every cluster name, /ready failing. Ask a
	// few times over a second: it must not change while the API is down.
	for range 3 {
		for _, q := range [][2]string{{name, "A"}, {"nothere.app.svc.cluster.local", "A"}, {"cluster.local", "SOA"}, {"dns-version.cluster.local", "TXT"}} {
			if a := waiting.dig(t, q[0], q[1]); a.status != "SERVFAIL" || len(a.answer) != 0 {
				t.Fatalf("before the first sync, %s %s: want SERVFAIL, got\n%s", q[0], q[1], a.raw)
			}
		}
		if code := waiting.ready(); code != http.StatusServiceUnavailable {
			t.Fatalf("before the first sync, /ready = %d, want 503", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The bounded one gave up waiting: it serves what it has (nothing) and
	// says so, and is still not ready.
	bounded.waitLog(t, "serving the partial view", 20*time.Second)
	bounded.waitStatus(t, name, "A", "NXDOMAIN")
	bounded.waitDig(t, propagate, "cluster.local", "SOA", "the SOA", func(a *answer) bool {
		return a.status == "NOERROR" && len(a.answer) == 1
	})
	if code := bounded.ready(); code != http.StatusServiceUnavailable {
		t.Errorf("after sync_timeout without a sync, /ready = %d, want 503", code)
	}

	// The API server comes up: both sync.
	phase("SERVFAIL checked; starting the API server")
	api.StartAPIServer()
	phase("API server up")
	for _, s := range []*server{waiting, bounded} {
		s.waitReady(t, 90*time.Second) // the reflectors' backoff grows while the API is down
		s.waitData(t, name, "A", web.Spec.ClusterIP)
	}
	waiting.waitLog(t, "synced with the API server", time.Second)
	phase("both synced; stopping the API server")

	// Outage: the last known cluster is served, unchanged, and /ready stays.
	api.StopAPIServer()
	for range 5 {
		a := waiting.dig(t, name, "A")
		if a.status != "NOERROR" || len(a.answer) != 1 || rrData(a.answer[0]) != web.Spec.ClusterIP {
			t.Fatalf("during the outage: want the last known address, got\n%s", a.raw)
		}
		if a := waiting.dig(t, "_http._tcp."+name, "SRV"); a.status != "NOERROR" || len(a.answer) != 1 {
			t.Fatalf("during the outage: want the SRV record, got\n%s", a.raw)
		}
		if code := waiting.ready(); code != http.StatusOK {
			t.Fatalf("during the outage /ready = %d, want 200 (the last known cluster is served)", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	waiting.waitLog(t, "API server unreachable: serving the last known cluster", 20*time.Second)

	// Back: changes made while clusterdns is still reconnecting arrive.
	phase("outage checked; starting the API server")
	api.StartAPIServer()
	back := time.Now()
	k.createService(clusterIPService("app", "late", tcpPort("http", 80)))
	k.updateService("app", "web", func(s *corev1.Service) { s.Spec.Ports[0].Port = 8080 })
	k.deleteService("app", "gone")
	for _, s := range []*server{waiting, bounded} {
		s.waitDig(t, 90*time.Second, "late.app.svc.cluster.local", "A", "one address", func(a *answer) bool {
			return a.status == "NOERROR" && len(a.answer) == 1
		})
		s.waitData(t, "_http._tcp."+name, "SRV", "0 100 8080 "+name+".")
		s.waitStatus(t, "gone.app.svc.cluster.local", "A", "NXDOMAIN")
	}
	phase(fmt.Sprintf("changes made when the API server returned reached DNS after %v", time.Since(back).Round(time.Millisecond)))
	waiting.waitLog(t, "API server reachable again", time.Second)
}
