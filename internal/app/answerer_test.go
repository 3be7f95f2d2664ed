package app

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/pages"
	"github.com/clusterdns/clusterdns/internal/testbin"
	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"
	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/server"
)

// These tests run the answerer (store → handler wiring and reload) with a
// real Store, Handler and Listener on loopback; no binary, no apiserver.

// testConfig is a configuration for a server on a kernel-chosen loopback
// port without upstreams or HTTP endpoints, plus extra flags.
func testConfig(t *testing.T, extra ...string) *Config {
	t.Helper()
	args := append([]string{"--listen", "127.0.0.1:0", "--upstreams", "", "--metrics-listen", "",
		"--health-listen", "", "--source", "files"}, extra...)
	cfg, err := LoadConfig(args)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// served is an answerer in service behind a listener, over a store that
// holds the service web.default (10.96.0.10), synced and published.
type served struct {
	ans   *answerer
	store *registry.Store
	addr  string
	logs  *testbin.LogBuffer
}

func serve(t *testing.T, cfg *Config) *served {
	t.Helper()
	logs := &testbin.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cluster := registrytest.NewWith(t, registry.Options{Logger: log}).ClusterIP("default/web", "10.96.0.10")
	cluster.Publish()
	store := cluster.Store
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ans := &answerer{log: log, store: store, metrics: server.NewMetrics(), fwdStat: resolver.NewMetrics()}
	ans.trimmer = pages.NewSettleTrimmer(time.Hour, time.Hour, func() {})
	if err := ans.start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	l, err := server.Listen(ans.handler(), server.ListenOptions{Addr: cfg.Listen}, log)
	if err != nil {
		t.Fatal(err)
	}
	ans.mu.Lock()
	ans.listener = l
	ans.mu.Unlock()
	done := make(chan struct{})
	go func() { l.Serve(); close(done) }()
	t.Cleanup(func() { l.Close(); <-done })
	return &served{ans: ans, store: store, addr: l.Addr().String(), logs: logs}
}

// ask sends one A query for web.default and returns the answer's TTL, or
// an error naming what went wrong.
func ask(c *dns.Client, conn *dns.Conn) (uint32, string) {
	q := new(dns.Msg)
	q.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
	r, _, err := c.ExchangeWithConn(q, conn)
	if err != nil {
		return 0, err.Error()
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return 0, "rcode " + dns.RcodeToString[r.Rcode] + ", " + r.String()
	}
	return r.Answer[0].Header().Ttl, ""
}

func dial(t *testing.T, addr string) (*dns.Client, *dns.Conn) {
	t.Helper()
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	conn, err := c.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return c, conn
}

// A reload builds the next handler next to the running one and swaps it
// in: queries sent all along are all answered, and once reload returns the
// new settings answer.
func TestReloadSwapsWithoutDroppingQueries(t *testing.T) {
	s := serve(t, testConfig(t))
	var answered, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		c, conn := dial(t, s.addr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, bad := ask(c, conn); bad != "" {
				failed.Add(1)
				firstFailure.CompareAndSwap(nil, bad)
			} else {
				answered.Add(1)
			}
		}
	}()
	c, conn := dial(t, s.addr)
	for ttl := 10; ttl < 30; ttl++ {
		if err := s.ans.reload(testConfig(t, "--ttl", strconv.Itoa(ttl))); err != nil {
			t.Fatal(err)
		}
		got, bad := ask(c, conn)
		if bad != "" || got != uint32(ttl) {
			t.Fatalf("after the reload to ttl %d: ttl %d %s", ttl, got, bad)
		}
	}
	close(stop)
	<-loopDone
	if failed.Load() != 0 || answered.Load() == 0 {
		t.Fatalf("during 20 reloads: %d answered, %d failed (first: %v)", answered.Load(), failed.Load(), firstFailure.Load())
	}
}

// A configuration that does not build is refused as a whole: the running
// handler stays and answers as before.
func TestReloadRefusesWhatDoesNotBuild(t *testing.T) {
	s := serve(t, testConfig(t, "--ttl", "7"))
	before := s.ans.handler()
	err := s.ans.reload(testConfig(t, "--ttl", "9", "--upstreams", "/nonexistent/resolv.conf"))
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/resolv.conf") {
		t.Fatalf("reload with an unreadable resolv.conf: %v, want an error naming it", err)
	}
	if s.ans.handler() != before {
		t.Fatal("a refused configuration replaced the handler")
	}
	c, conn := dial(t, s.addr)
	if ttl, bad := ask(c, conn); bad != "" || ttl != 7 {
		t.Fatalf("after the refused reload: ttl %d %s, want the running 7", ttl, bad)
	}
}

// Keys only read at start are named in the log when a reload changes them;
// the rest of the reload applies.
func TestReloadLogsRestartOnlyKeys(t *testing.T) {
	s := serve(t, testConfig(t))
	if err := s.ans.reload(testConfig(t, "--pprof", "--log-format", "json", "--udp-sockets", "3", "--ttl", "12")); err != nil {
		t.Fatal(err)
	}
	logs := s.logs.String()
	for _, key := range []string{"pprof", "log_format", "udp_sockets"} {
		if !strings.Contains(logs, `msg="configuration change needs a restart, ignored" key=`+key) {
			t.Errorf("no restart warning for %s in:\n%s", key, logs)
		}
	}
	if strings.Contains(logs, "key=ttl") {
		t.Errorf("ttl is reloadable but was logged as needing a restart:\n%s", logs)
	}
	c, conn := dial(t, s.addr)
	if ttl, bad := ask(c, conn); bad != "" || ttl != 12 {
		t.Fatalf("the reloadable part: ttl %d %s, want 12", ttl, bad)
	}
}

// Changes published by the store reach the handler in service (built off
// the store's lock), also after a reload swapped it.
func TestStoreChangesReachTheHandler(t *testing.T) {
	s := serve(t, testConfig(t))
	if err := s.ans.reload(testConfig(t, "--ttl", "8")); err != nil {
		t.Fatal(err)
	}
	s.store.UpsertService(&registry.Service{Key: registry.Key{Namespace: "default", Name: "web"},
		Kind: registry.KindClusterIP, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.11")}})
	want := s.store.Flush().Serial
	testbin.WaitFor(t, 5*time.Second, func() bool { return s.ans.handler().Serial() >= want })
	c, conn := dial(t, s.addr)
	q := new(dns.Msg)
	q.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
	r, _, err := c.ExchangeWithConn(q, conn)
	if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.96.0.11" {
		t.Fatalf("after the change: %v %v", r, err)
	}
}

// /ready follows the source and then the index: not ready before the
// source is synced, ready once the synced snapshot is indexed.
func TestReadyWhenIndexed(t *testing.T) {
	s := serve(t, testConfig(t))
	var synced atomic.Bool
	ready := s.ans.readyWhenIndexed(synced.Load)
	if ready() {
		t.Fatal("ready before the source is synced")
	}
	synced.Store(true)
	if !ready() {
		t.Fatal("not ready with the source synced and its snapshot indexed")
	}
}
