package lbtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// StartBackends starts n backends on 127.a.b.1 … 127.a.b.n (a, b random, so
// concurrent test runs do not collide), all on one port; tb.Cleanup stops them.
func StartBackends(tb testing.TB, n int) []*Backend {
	tb.Helper()
	for try := 0; try < 50; try++ {
		a, b := 100+rand.IntN(150), 1+rand.IntN(254)
		bs, err := listenAll(n, a, b)
		if err == nil {
			for _, be := range bs {
				be.srv = &http.Server{Handler: be}
				go be.srv.Serve(be.ln)
			}
			tb.Cleanup(func() {
				for _, be := range bs {
					be.Stop()
				}
			})
			return bs
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			tb.Fatalf("lbtest: %v", err)
		}
	}
	tb.Fatalf("lbtest: no free loopback port for %d backends", n)
	return nil
}

func listenAll(n, a, b int) ([]*Backend, error) {
	var bs []*Backend
	port := "0"
	for i := 1; i <= n; i++ {
		ip := netip.AddrFrom4([4]byte{127, byte(a), byte(b), byte(i)})
		ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), port))
		if err != nil {
			for _, be := range bs {
				be.ln.Close()
			}
			return nil, err
		}
		ap := netip.MustParseAddrPort(ln.Addr().String())
		port = fmt.Sprint(ap.Port())
		bs = append(bs, &Backend{Addr: ap, ln: ln})
	}
	return bs, nil
}

// Addrs returns the backends' IP addresses, for DNS.SetAddrs.
func Addrs(bs []*Backend) []netip.Addr {
	out := make([]netip.Addr, len(bs))
	for i, b := range bs {
		out[i] = b.Addr.Addr()
	}
	return out
}
