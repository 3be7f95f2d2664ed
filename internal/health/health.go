// Package health serves the liveness and readiness endpoints of a
// clusterdns process over HTTP:
//
//	GET /healthz  200 "ok" while the process runs
//	GET /ready    200 "ready" once the cluster view is synced, else 503
//
// cmd/clusterdns starts one Server; kubelet probes (or tests) poll it.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Server is the HTTP server of /healthz and /ready. Its methods are safe for
// concurrent use.
type Server struct {
	ln       net.Listener
	srv      *http.Server
	log      *slog.Logger
	ready    func() bool
	draining atomic.Bool
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
	s := &Server{ln: ln, log: log, ready: ready}
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

// Serve answers requests until Close; it blocks and returns nil after Close.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("health endpoint: %w", err)
	}
	return nil
}

// Close stops the server, waiting up to a second for requests in flight.
func (s *Server) Close() error {
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
