package lbtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"
	"testing"
)

// ListenLoopback opens n TCP listeners on 127.a.b.1 … 127.a.b.n (a, b random,
// so concurrent test runs do not collide), all on one port picked by the
// kernel, so A records can point at them. StartBackends and the gRPC tests
// serve on them; the caller closes them.
func ListenLoopback(tb testing.TB, n int) []net.Listener {
	tb.Helper()
	for range 50 {
		a, b := 100+rand.IntN(150), 1+rand.IntN(254)
		lns, err := listenAll(n, a, b)
		if err == nil {
			return lns
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			tb.Fatalf("lbtest: %v", err)
		}
	}
	tb.Fatalf("lbtest: no free loopback port for %d listeners", n)
	return nil
}

func listenAll(n, a, b int) ([]net.Listener, error) {
	var lns []net.Listener
	port := "0"
	for i := 1; i <= n; i++ {
		ip := netip.AddrFrom4([4]byte{127, byte(a), byte(b), byte(i)})
		ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), port))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		port = fmt.Sprint(netip.MustParseAddrPort(ln.Addr().String()).Port())
		lns = append(lns, ln)
	}
	return lns, nil
}
