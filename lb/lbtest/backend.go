package lbtest

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Backend is an HTTP server on its own loopback address (127.a.b.i). It answers
// every request with 200 and its address, counting requests. While held,
// requests whose path ends in "/hold" wait in the handler until Release.
type Backend struct {
	// Addr is the backend's address; all backends of one StartBackends call
	// share the port, so A records can point at them.
	Addr netip.AddrPort

	hits    atomic.Int64
	srv     *http.Server
	ln      net.Listener
	mu      sync.Mutex
	hold    chan struct{} // non-nil while held
	entered chan struct{} // receives when a held request enters the handler
	stopped atomic.Bool
	delay   atomic.Int64 // nanoseconds added to every response
}

// SetDelay makes every response wait d (0: answer at once).
func (b *Backend) SetDelay(d time.Duration) { b.delay.Store(int64(d)) }

// Hits returns the number of requests served (or being served).
func (b *Backend) Hits() int64 { return b.hits.Load() }

// Hold makes new requests to ".../hold" wait in the handler until Release. Each
// request that starts waiting sends on the returned channel (buffered, 64).
func (b *Backend) Hold() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hold = make(chan struct{})
	b.entered = make(chan struct{}, 64)
	return b.entered
}

// Release lets held requests finish.
func (b *Backend) Release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hold != nil {
		close(b.hold)
		b.hold = nil
	}
}

// Stop closes the listener and every connection: new connections are refused.
func (b *Backend) Stop() {
	if b.stopped.CompareAndSwap(false, true) {
		b.Release()
		b.srv.Close()
	}
}

// ServeHTTP implements http.Handler (it is the backend's only handler).
func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	b.mu.Lock()
	hold, entered := b.hold, b.entered
	b.mu.Unlock()
	if hold != nil && strings.HasSuffix(r.URL.Path, "/hold") {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-hold
	}
	if d := b.delay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	fmt.Fprintf(w, "%s\n", b.Addr)
}

// StartBackends starts n backends on 127.a.b.1 … 127.a.b.n (ListenLoopback),
// all on one port; tb.Cleanup stops them.
func StartBackends(tb testing.TB, n int) []*Backend {
	tb.Helper()
	var bs []*Backend
	for _, ln := range ListenLoopback(tb, n) {
		be := &Backend{Addr: netip.MustParseAddrPort(ln.Addr().String()), ln: ln, srv: &http.Server{}}
		be.srv.Handler = be
		go be.srv.Serve(ln)
		bs = append(bs, be)
	}
	tb.Cleanup(func() {
		for _, be := range bs {
			be.Stop()
		}
	})
	return bs
}

// Addrs returns the backends' IP addresses, for DNS.SetAddrs.
func Addrs(bs []*Backend) []netip.Addr {
	out := make([]netip.Addr, len(bs))
	for i, b := range bs {
		out[i] = b.Addr.Addr()
	}
	return out
}

// ChiSquare is Pearson's statistic of observed counts against equal
// shares, for tests of how evenly calls spread.
func ChiSquare(counts []int64) float64 {
	var total float64
	for _, c := range counts {
		total += float64(c)
	}
	exp := total / float64(len(counts))
	var x float64
	for _, c := range counts {
		x += (float64(c) - exp) * (float64(c) - exp) / exp
	}
	return x
}
