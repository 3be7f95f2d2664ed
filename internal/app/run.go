// Package app is the clusterdns server put together: its configuration
// (one table of keys: flags, defaults, validation, reload), the wiring of
// the store to the DNS handler (answerer), reloads, health and metrics
// endpoints. cmd/clusterdns only parses the command line and calls Run;
// the wiring lives here, not in package main, so that it has tests of its
// own. It is internal: nothing outside this module builds on it.
package app

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"k8s.io/klog/v2"

	"github.com/clusterdns/clusterdns/internal/dirwatch"
	"github.com/clusterdns/clusterdns/internal/pages"
	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/server"
	"github.com/clusterdns/clusterdns/zones"
)

func newLogger(cfg *Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// Run constructs the store, its source, the handler and the listener, and
// serves until ctx ends (then shuts down: lame duck, listeners closed). It
// blocks; cmd/clusterdns calls it with the configuration from LoadConfig,
// which a reload re-reads from the same arguments.
func Run(ctx context.Context, cfg *Config) error {
	log := newLogger(cfg)
	applyMemoryLimit(cfg)
	// client-go code that logs without a context logger goes through klog's
	// global logger: send it to ours too (the process's one logging setup).
	klog.SetSlogLogger(log)
	store := registry.NewStore(registry.Options{EndpointPodNames: cfg.EndpointPodNames, Logger: log})
	metrics, fwdMetrics := server.NewMetrics(), resolver.NewMetrics()
	metrics.SetServer(cfg.Listen) // the server label of the coredns_* metrics
	fwdMetrics.SetServer(cfg.Listen)
	metrics.CountPanics(fwdMetrics.Panics) // coredns_panics_total: the listeners' and the forwarder's
	ans := &answerer{log: log, store: store, metrics: metrics, fwdStat: fwdMetrics, gcPercent: cfg.GCPercent}
	ans.trimmer = pages.NewSettleTrimmer(time.Second, 10*time.Second, ans.releaseMemory)
	// The cluster comes from the Kubernetes API or from files; zone files
	// come from zones_dir (or the embedded example with the file source).
	rc, apiFrom, err := kubeRESTConfig(cfg)
	if err != nil {
		return err
	}
	var kube *registry.KubeSource
	ready := store.Synced
	if rc != nil {
		if kube, err = newKubeSource(cfg, rc, store, log); err != nil {
			return err
		}
		ready = kube.Synced
	} else if len(cfg.Namespaces) > 0 {
		log.Warn("namespaces applies to the Kubernetes source only; every namespace in the files is served")
	}
	var fsys fs.FS = zones.Default
	where := "zones"
	if cfg.ZonesDir != "" {
		if st, err := os.Stat(cfg.ZonesDir); err != nil || !st.IsDir() {
			return fmt.Errorf("zones_dir %q: not a readable folder", cfg.ZonesDir)
		}
		fsys, where = os.DirFS(cfg.ZonesDir), cfg.ZonesDir
	}
	var files *registry.FileSource
	var zf *server.ZoneFiles
	switch {
	case kube == nil:
		files = registry.NewFileSource(fsys, cfg.ZonesDir, store, log)
		if err := files.Load(); err != nil {
			log.Error("cluster file refused", "err", err)
		}
		zf = server.NewZoneFiles(fsys, where)
	case cfg.ZonesDir != "":
		warnClusterFiles(fsys, where, log)
		zf = server.NewZoneFiles(fsys, where)
	default:
		where = "(none)" // the embedded example zone is not served with a real cluster
	}
	ans.zf = zf
	if err := ans.start(ctx, cfg); err != nil {
		return err
	}
	rrl, err := server.NewRRL(cfg.RRL)
	if err != nil {
		return err
	}
	reg := newRegistry(metrics, fwdMetrics)
	if rrl != nil {
		reg.MustRegister(rrl)
	}
	ms, err := startMetrics(cfg, reg, log)
	if err != nil {
		return err
	}

	hs, err := startHealth(cfg, ans.readyWhenIndexed(ready), log)
	if err != nil {
		return err
	}
	if hs != nil {
		reg.MustRegister(hs) // coredns_health_request_duration_seconds
	}
	lopt := server.ListenOptions{Addr: cfg.Listen, UDPSockets: cfg.UDPSockets,
		MaxTCPConns: cfg.MaxTCPConns, TCPIdleTimeout: cfg.TCPIdleTimeout, RRL: rrl}
	if cfg.TLSListen != "" {
		certs, err := server.NewCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, log)
		if err != nil {
			if hs != nil {
				hs.Close()
			}
			return fmt.Errorf("tls_listen %s: %w", cfg.TLSListen, err)
		}
		lopt.TLS = server.TLSOptions{Addr: cfg.TLSListen, Certs: certs}
	}
	l, err := server.Listen(ans.handler(), lopt, log)
	if err != nil {
		if hs != nil {
			hs.Close()
		}
		return err
	}
	cluster := "files"
	if kube != nil {
		cluster = "Kubernetes API (" + apiFrom + ")"
	}
	log.Info("serving", "addr", l.Addr().String(), "domains", cfg.Domains, "cluster", cluster, "zones", where)
	if a := l.TLSAddr(); a != nil {
		log.Info("serving DNS over TLS", "addr", a.String())
	}
	kubeDone := make(chan struct{})
	if kube != nil {
		// Until the first full sync (or sync_timeout) cluster names answer
		// SERVFAIL: the store publishes nothing before MarkSynced.
		go func() {
			defer close(kubeDone)
			if err := kube.Run(ctx); err != nil {
				log.Error("Kubernetes source stopped", "err", err)
			}
		}()
	} else {
		close(kubeDone)
	}
	if cfg.ZonesDir != "" {
		go func() {
			err := dirwatch.Watch(ctx, log, cfg.ZonesDir, 50*time.Millisecond, 2*time.Second, func() {
				if files != nil {
					if err := files.Load(); err != nil {
						log.Error("cluster file refused, last good contents kept", "err", err)
					}
				}
				if err := ans.reloadZones(); err != nil {
					log.Error("zone file refused, last good contents kept", "err", err)
				}
			})
			if err != nil {
				log.Error("watching zones folder", "err", err)
			}
		}()
	}
	ans.mu.Lock()
	ans.listener = l
	ans.mu.Unlock()
	watchConfig(ctx, ans, log)

	done := make(chan struct{})
	go func() { l.Serve(); close(done) }()
	<-ctx.Done()
	// Lame duck: /ready fails at once so that the Service stops sending us
	// new clients, while queries keep being answered for lame_duck.
	if hs != nil {
		hs.Drain()
	}
	// lame_duck is reloadable: the configuration in service decides.
	if lameDuck := ans.config().LameDuck; lameDuck > 0 {
		log.Info("shutting down: lame duck", "for", lameDuck)
		time.Sleep(lameDuck)
	}
	log.Info("shutting down: closing listeners")
	l.Close()
	<-done
	<-kubeDone
	if hs != nil {
		hs.Close()
	}
	if ms != nil {
		ms.Close()
	}
	return nil
}

// newForwarder builds the resolver for names outside the served zones, or
// nil when no upstream is configured. resolv.conf paths are expanded; the
// server's own address is dropped (it would loop).
func newForwarder(cfg *Config, log *slog.Logger, metrics *resolver.Metrics) (*resolver.Forwarder, error) {
	var ups []string
	for _, u := range cfg.Upstreams {
		if !strings.HasPrefix(u, "/") {
			ups = append(ups, u)
			continue
		}
		rc, err := dns.ClientConfigFromFile(u)
		if err != nil {
			return nil, fmt.Errorf("upstreams: %s: %w", u, err)
		}
		for _, s := range rc.Servers {
			ap, err := netip.ParseAddrPort(net.JoinHostPort(s, rc.Port))
			if err != nil || ownAddress(cfg.Listen, ap) {
				log.Warn("upstream from resolv.conf skipped", "file", u, "server", s)
				continue
			}
			ups = append(ups, ap.String())
		}
	}
	if len(ups) == 0 {
		log.Info("no upstream: names outside the served zones are refused")
		return nil, nil
	}
	f, err := resolver.New(resolver.Options{
		Upstreams:   ups,
		StubDomains: cfg.StubDomains,
		Policy:      cfg.UpstreamPolicy,
		Timeout:     cfg.ForwardTimeout,
		MaxInFlight: cfg.MaxForwardInFlight,
		Cache: resolver.CacheOptions{
			MaxEntries:  cfg.CacheSize,
			MaxTTL:      cfg.CacheMaxTTL,
			MaxNegTTL:   cfg.CacheMaxNegTTL,
			StaleFor:    cfg.ServeStale,
			PrefetchPct: cfg.Prefetch,
		},
		Logger:  log,
		Metrics: metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("forwarding: %w", err)
	}
	log.Info("forwarding", "upstreams", ups, "stub_domains", cfg.StubDomains, "policy", cfg.UpstreamPolicy)
	return f, nil
}

// applyMemoryLimit sets the runtime's soft memory limit from memory_limit,
// when the key is set (else $GOMEMLIMIT, read by the runtime, applies).
func applyMemoryLimit(cfg *Config) {
	if cfg.MemoryLimit >= 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
}

// ownAddress reports whether a server at ap is this one, listening on
// listen: the same address and port, or, listening on every address
// (":53", "0.0.0.0:53", "[::]:53"), a loopback or unspecified address on
// that port.
func ownAddress(listen string, ap netip.AddrPort) bool {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port != strconv.Itoa(int(ap.Port())) {
		return false
	}
	if host == "" {
		return ap.Addr().IsLoopback() || ap.Addr().IsUnspecified()
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	if a.IsUnspecified() {
		return ap.Addr().IsLoopback() || ap.Addr().IsUnspecified()
	}
	return a.Unmap() == ap.Addr().Unmap()
}
