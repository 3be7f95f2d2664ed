package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/clusterdns/clusterdns/internal/pages"
	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/server"
)

// answerer owns what a configuration reload replaces: the forwarder and the
// handler built from the reloadable settings (TTLs, upstreams, stub
// domains, ordering, pod mode, autopath, query log). A reload builds a new
// pair next to the running one, feeds it the current snapshot and zones,
// and swaps it into the listener: no query is dropped.
type answerer struct {
	log     *slog.Logger
	store   *registry.Store
	metrics *server.Metrics
	fwdStat *resolver.Metrics

	mu        sync.Mutex // serialises builds, swaps and zone reloads
	zf        *server.ZoneFiles
	h         *server.Handler
	cfg       *Config
	unsub     func()
	stopFwd   context.CancelFunc
	listener  *server.Listener
	parentCtx context.Context
	released  sync.Once // gc_percent, after the first full build
	// releasedPages: pages.ReleaseStartupPages, after the first full build.
	releasedPages sync.Once
	gcPercent     int // gc_percent (a restart key)
	// trimmer returns the garbage of snapshot changes to the OS once they
	// settle (releaseMemory).
	trimmer *pages.SettleTrimmer
}

// build makes a handler (and forwarder) for cfg, subscribed to the store
// and loaded with the zone files. The caller swaps it in or discards it.
func (a *answerer) build(cfg *Config) (h *server.Handler, unsub func(), stopFwd context.CancelFunc, err error) {
	fwd, err := newForwarder(cfg, a.log, a.fwdStat)
	if err != nil {
		return nil, nil, nil, err
	}
	opts := server.Options{
		Domains:        cfg.Domains,
		ClusterSetZone: cfg.ClusterSetZone,
		ReverseZones:   cfg.ReverseZones,
		TTL:            cfg.TTL,
		NegativeTTL:    cfg.NegativeTTL,
		Pods:           cfg.Pods,
		DNSService:     cfg.DNSService,
		RecursionFrom:  cfg.RecursionFrom,
		TransferFrom:   cfg.TransferFrom,
		Autopath:       cfg.Autopath,
		AnswerOrder:    cfg.AnswerOrder,
		ZoneOrder:      cfg.ZoneOrder,
		Metrics:        a.metrics,
	}
	var hosts *server.Hosts
	if cfg.Hosts.File != "" || len(cfg.Hosts.Entries) > 0 {
		if hosts, err = server.NewHosts(cfg.Hosts, a.log); err != nil {
			return nil, nil, nil, err
		}
		opts.Hosts = hosts
	}
	if opts.Rewrite, err = server.NewRewriter(cfg.RewriteName); err != nil {
		return nil, nil, nil, err
	}
	if cfg.QueryLog {
		opts.QueryLog = a.log.With("log", "query")
		opts.QueryLogSample = uint32(cfg.QueryLogSample)
	}
	ctx, cancel := context.WithCancel(a.parentCtx)
	if fwd != nil {
		opts.Fallback = fwd
		a.fwdStat.Set(fwd)
		go fwd.Run(ctx)
	}
	h, err = server.NewHandler(opts, a.log)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	if hosts != nil {
		go hosts.Watch(ctx)
	}
	// Built off the store's lock by Follow's goroutine, so informer
	// handlers never wait for an index build; Follow returns once the
	// current snapshot is built, so h is ready to be swapped in.
	unsub = a.store.Follow(func(s *registry.Snapshot) {
		start := time.Now()
		if err := h.Update(s); err != nil {
			a.log.Error("snapshot not served", "err", err)
			return
		}
		a.log.Debug("cluster index built", "serial", s.Serial, "took", time.Since(start))
		// A build leaves its garbage (parsed objects, copied parts of
		// the old index): give those pages back once changes settle
		// rather than keep the peak as RSS (an idle server would never
		// collect it).
		a.trimmer.Changed()
	})
	if a.zf != nil {
		if err := h.LoadZones(a.zf); err != nil {
			a.log.Error("zone file refused", "err", err)
		}
	}
	return h, unsub, cancel, nil
}

// releaseMemory returns the garbage of the builds to the OS and, the first
// time (after the first full build), sets the GC target (gc_percent) and
// gives back the pages of the binary that only starting up used. The
// trimmer calls it.
func (a *answerer) releaseMemory() {
	a.released.Do(func() {
		// From now on the heap is mostly the long-lived model and index.
		if pct := a.gcPercent; pct > 0 && os.Getenv("GOGC") == "" {
			debug.SetGCPercent(pct)
			a.log.Debug("GC target set", "gc_percent", pct)
		}
	})
	debug.FreeOSMemory()
	a.releasedPages.Do(func() {
		n, err := pages.ReleaseStartupPages()
		if err != nil {
			a.log.Debug("startup pages kept", "err", err)
			return
		}
		a.log.Debug("startup pages released", "mapped_bytes", n)
	})
}

// start builds the first handler.
func (a *answerer) start(ctx context.Context, cfg *Config) error {
	a.parentCtx = ctx
	h, unsub, stop, err := a.build(cfg)
	if err != nil {
		return err
	}
	a.h, a.unsub, a.stopFwd, a.cfg = h, unsub, stop, cfg
	return nil
}

// readyWhenIndexed wraps a source's readiness for /ready: ready once the
// source is synced and the handler in service has built a snapshot the
// store published at or after that moment. Builds run off the store's lock
// (Store.Follow), so a synced store alone does not yet mean the synced
// cluster is answered. Once ready it stays ready. It never blocks.
func (a *answerer) readyWhenIndexed(synced func() bool) func() bool {
	var target atomic.Uint32 // the store's serial when first seen synced
	var ready atomic.Bool
	return func() bool {
		if ready.Load() {
			return true
		}
		if !synced() {
			return false
		}
		snap := a.store.Snapshot()
		if snap == nil {
			return false
		}
		target.CompareAndSwap(0, snap.Serial)
		if a.handler().Serial() < target.Load() {
			return false
		}
		ready.Store(true)
		return true
	}
}

// handler returns the handler in service.
func (a *answerer) handler() *server.Handler {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.h
}

// config returns the configuration in service (the last one reloaded).
func (a *answerer) config() *Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// reloadZones re-reads the zone files into the handler in service.
func (a *answerer) reloadZones() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.zf == nil {
		return nil
	}
	return a.h.LoadZones(a.zf)
}

// reload applies a new configuration: settings that need a restart are
// named in the log and keep their running value; the rest take effect
// atomically. A configuration that does not build is refused and the
// running one stays.
func (a *answerer) reload(next *Config) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range restartOnly(a.cfg, next) {
		a.log.Warn("configuration change needs a restart, ignored", "key", r)
	}
	h, unsub, stop, err := a.build(next)
	if err != nil {
		return err
	}
	if a.listener != nil {
		a.listener.SetHandler(h)
	}
	applyMemoryLimit(next)
	a.unsub()
	a.stopFwd()
	a.h, a.unsub, a.stopFwd, a.cfg = h, unsub, stop, next
	return nil
}

// startMetrics serves /metrics (and /debug/pprof/ when enabled) on its own
// port. It returns nil when metrics_listen is empty.
func startMetrics(cfg *Config, reg *prometheus.Registry, log *slog.Logger) (*http.Server, error) {
	if cfg.MetricsListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		if cfg.MetricsListen == defaultMetricsListen {
			// Several servers on one machine (tests, a node cache next to
			// the cluster DNS): only an explicit address must be served.
			log.Warn("metrics not served: the default address cannot be bound; set metrics_listen", "err", err)
			return nil, nil
		}
		return nil, fmt.Errorf("metrics endpoint %s: %w", cfg.MetricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	log.Info("metrics", "addr", ln.Addr().String(), "pprof", cfg.Pprof)
	return srv, nil
}

// newRegistry registers the process's collectors.
func newRegistry(m *server.Metrics, fwd *resolver.Metrics) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, fwd, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
