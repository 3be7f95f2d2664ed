// Package health serves the liveness and readiness endpoints of a
// clusterdns process over HTTP:
//
//	GET /healthz  200 "ok" while the process runs
//	GET /ready    200 "ready" once the cluster view is synced, else 503
//
// cmd/clusterdns starts one Server; kubelet probes (or tests) poll it.
// While it serves, the Server also asks its own /healthz once a second and
// exports how long that took as CoreDNS's health plugin does
// (coredns_health_request_duration_seconds, and
// coredns_health_request_failures_total): it is a prometheus.Collector.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// probeEvery is how often the server asks its own /healthz (CoreDNS's
// health plugin: once a second).
const probeEvery = time.Second

// Server is the HTTP server of /healthz and /ready. Its methods are safe for
// concurrent use.
type Server struct {
	ln       net.Listener
	srv      *http.Server
	log      *slog.Logger
	ready    func() bool
	draining atomic.Bool

	duration prometheus.Histogram
	failures prometheus.Counter
	stop     chan struct{}
	probes   sync.WaitGroup
	stopOnce sync.Once
}

// Listen binds addr (host:port) and returns a server that reports ready
// when ready() is true and Drain was not called. ready is called on every
// /ready request, from the HTTP server's goroutines: it must be cheap and
// must not block. Serve must be called to answer.
func Listen(addr string, ready func() bool, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health endpoint %s: %w", addr, err)
	}
	s := &Server{ln: ln, log: log, ready: ready, stop: make(chan struct{}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "coredns_health_request_duration_seconds", Help: "Histogram of the time (in seconds) each request took.",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 16), // CoreDNS's plugin.TimeBuckets
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coredns_health_request_failures_total", Help: "The number of times the health check failed.",
		}),
	}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Handler returns the handler of /healthz and /ready (and 404 elsewhere).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		switch {
		case s.draining.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("shutting down\n"))
		case !s.ready():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not synced\n"))
		default:
			_, _ = w.Write([]byte("ready\n"))
		}
	})
	return mux
}

// Drain makes /ready fail from now on (the process is shutting down);
// /healthz keeps answering until Close.
func (s *Server) Drain() { s.draining.Store(true) }

// Serve answers requests until Close, and asks its own /healthz every
// second for the metrics; it blocks and returns nil after Close.
func (s *Server) Serve() error {
	s.probes.Add(1)
	go s.probe()
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("health endpoint: %w", err)
	}
	return nil
}

// probe asks /healthz every probeEvery until Close, timing each answer.
func (s *Server) probe() {
	defer s.probes.Done()
	url := "http://" + selfAddr(s.ln.Addr()) + "/healthz"
	client := &http.Client{Timeout: 5 * time.Second}
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		start := time.Now()
		resp, err := client.Get(url)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %s", resp.Status)
			}
		}
		s.duration.Observe(time.Since(start).Seconds())
		if err != nil {
			s.failures.Inc()
			s.log.Warn("health self-check failed", "url", url, "err", err)
		}
	}
}

// selfAddr is an address to reach a listener bound to a: its own, or
// loopback for a wildcard bind.
func selfAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	ip := net.IPv4(127, 0, 0, 1)
	if tcp.IP.To4() == nil {
		ip = net.IPv6loopback
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
}

// Describe implements prometheus.Collector.
func (s *Server) Describe(ch chan<- *prometheus.Desc) {
	s.duration.Describe(ch)
	s.failures.Describe(ch)
}

// Collect implements prometheus.Collector.
func (s *Server) Collect(ch chan<- prometheus.Metric) {
	s.duration.Collect(ch)
	s.failures.Collect(ch)
}

// Close stops the server, waiting up to a second for requests in flight.
func (s *Server) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.probes.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	// Shutdown closes the listener only when Serve was called.
	if cerr := s.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return fmt.Errorf("health endpoint: %w", err)
	}
	return nil
}
