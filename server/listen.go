package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ListenOptions tune the transports.
type ListenOptions struct {
	// Addr is host:port for both UDP and TCP.
	Addr string
	// UDPSockets is the number of SO_REUSEPORT sockets, each read by one
	// goroutine; 0 means GOMAXPROCS.
	UDPSockets int
	// MaxTCPConns bounds concurrent TCP connections (0: 1024); more are
	// closed at once.
	MaxTCPConns int
	// TCPIdleTimeout closes a TCP connection that sends nothing (0: 10 s);
	// it also bounds the time one query may take to arrive, so a client that
	// sends a byte and stalls (slowloris) holds its slot no longer.
	TCPIdleTimeout time.Duration
	// RRL limits the rate of UDP responses (nil: no limit); TCP is never
	// limited.
	RRL *RRL
	// UDPBuffer is the receive and send buffer asked for each UDP socket
	// (0: 4 MiB; the kernel caps it at net.core.rmem_max/wmem_max), so a
	// burst or a GC pause under load queues queries instead of dropping
	// them.
	UDPBuffer int
	// TLS adds a DNS over TLS listener (tls.go); zero: none.
	TLS TLSOptions
}

// Listener serves a Handler over UDP and TCP on one address.
type Listener struct {
	h   atomic.Pointer[Handler]
	opt ListenOptions
	log *slog.Logger
	udp []*net.UDPConn
	tcp *net.TCPListener
	// tlsLn and tlsSem: the DNS over TLS listener and its connection
	// slots (tls.go), nil when off.
	tlsLn  net.Listener
	tlsSem chan struct{}
	wg     sync.WaitGroup
	sem    chan struct{}
	mu     sync.Mutex
	open   map[net.Conn]struct{}
	// closed is set by Close, so a UDP read loop that never finds its
	// socket empty (a flood) still stops.
	closed atomic.Bool
	// lastLimitLog is when the TCP connection limit was last logged (unix
	// nanoseconds): at most one line a second under a flood.
	lastLimitLog atomic.Int64
}

// Listen binds the UDP sockets and the TCP listener. It fails when the
// address cannot be bound; nothing is served until Serve.
func Listen(h *Handler, opt ListenOptions, log *slog.Logger) (*Listener, error) {
	_, port, _ := net.SplitHostPort(opt.Addr)
	for attempt := 0; ; attempt++ {
		l, err := listen(h, opt, log)
		// Port 0: TCP chose a port whose UDP side was taken; choose again.
		if err == nil || port != "0" || attempt == 20 || !errors.Is(err, syscall.EADDRINUSE) {
			return l, err
		}
	}
}

func listen(h *Handler, opt ListenOptions, log *slog.Logger) (*Listener, error) {
	if log == nil {
		log = slog.Default()
	}
	if opt.UDPSockets <= 0 {
		opt.UDPSockets = runtime.GOMAXPROCS(0)
	}
	if opt.MaxTCPConns <= 0 {
		opt.MaxTCPConns = 1024
	}
	if opt.TCPIdleTimeout <= 0 {
		opt.TCPIdleTimeout = 10 * time.Second
	}
	if opt.UDPBuffer <= 0 {
		opt.UDPBuffer = 4 << 20
	}
	l := &Listener{opt: opt, log: log, sem: make(chan struct{}, opt.MaxTCPConns), open: map[net.Conn]struct{}{}}
	l.h.Store(h)
	lc := net.ListenConfig{Control: reusePort}
	ctx := context.Background()
	// TCP first and without SO_REUSEPORT: a port another server holds is
	// refused here, instead of silently sharing its UDP traffic.
	ln, err := net.Listen("tcp", opt.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen tcp %s: %w", opt.Addr, err)
	}
	l.tcp = ln.(*net.TCPListener)
	addr := ln.Addr().String() // the real port when opt.Addr asked for 0
	if err := l.listenTLS(); err != nil {
		l.Close()
		return nil, err
	}
	for i := 0; i < opt.UDPSockets; i++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("listen udp %s (socket %d): %w", addr, i+1, err)
		}
		uc := pc.(*net.UDPConn)
		if err := uc.SetReadBuffer(opt.UDPBuffer); err != nil {
			log.Debug("udp receive buffer", "size", opt.UDPBuffer, "err", err)
		}
		if err := uc.SetWriteBuffer(opt.UDPBuffer); err != nil {
			log.Debug("udp send buffer", "size", opt.UDPBuffer, "err", err)
		}
		l.udp = append(l.udp, uc)
	}
	return l, nil
}

func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// Addr returns the bound address (with the real port when 0 was asked).
func (l *Listener) Addr() netip.AddrPort {
	return l.udp[0].LocalAddr().(*net.UDPAddr).AddrPort()
}

// Serve answers until Close; it blocks.
func (l *Listener) Serve() {
	for _, c := range l.udp {
		l.wg.Add(1)
		go l.serveUDP(c)
	}
	l.wg.Add(1)
	go l.serveTCP(l.tcp, l.sem)
	if l.tlsLn != nil {
		l.wg.Add(1)
		go l.serveTCP(l.tlsLn, l.tlsSem)
	}
	l.wg.Wait()
}

// Close stops taking new queries and connections: the UDP sockets and the
// TCP listener close, and idle TCP connections are woken to close; one
// answering a query finishes writing it, then closes. Close does not wait:
// Serve returns once every goroutine has ended.
func (l *Listener) Close() {
	l.closed.Store(true)
	for _, c := range l.udp {
		c.Close()
	}
	if l.tcp != nil {
		l.tcp.Close()
	}
	if l.tlsLn != nil {
		l.tlsLn.Close()
	}
	l.mu.Lock()
	for c := range l.open {
		// Wake idle readers; a response being written still completes.
		c.SetReadDeadline(time.Now())
	}
	l.mu.Unlock()
}

// udpSender returns the function that sends a deferred (forwarded) answer
// to a client on c, through the rate limit; the handler calls it from the
// fallback's goroutines.
func (l *Listener) udpSender(c *net.UDPConn) func(netip.AddrPort, []byte) {
	rrl := l.opt.RRL
	return func(client netip.AddrPort, b []byte) {
		if rrl != nil {
			if b = rrl.filter(client.Addr(), b); b == nil {
				return
			}
		}
		if _, err := c.WriteToUDPAddrPort(b, client); err != nil && !errors.Is(err, net.ErrClosed) {
			l.log.Debug("udp write", "client", client, "err", err)
		}
	}
}

// respond runs the handler and turns a panic into a dropped query: one bad
// query never takes the server down. The result's Msg is what to send now.
func (l *Listener) respond(req, out []byte, src netip.AddrPort, tcp bool, send func(netip.AddrPort, []byte)) (res Result) {
	defer func() {
		if r := recover(); r != nil {
			l.h.Load().metrics.panicked()
			l.log.Error("panic answering a query", "client", src, "panic", r, "query", fmt.Sprintf("%x", req))
			res = Result{Outcome: Dropped, Zone: zoneOther}
		}
	}()
	return l.h.Load().Handle(req, out, src, tcp, send)
}

// SetHandler makes every query from now on go to h (a configuration
// reload); queries being answered finish with the handler they started
// with. It never blocks.
func (l *Listener) SetHandler(h *Handler) { l.h.Store(h) }

// serveTCP accepts connections on ln (TCP, or TLS whose handshake happens
// in serveConn) while a slot of sem is free.
func (l *Listener) serveTCP(ln net.Listener, sem chan struct{}) {
	defer l.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.log.Warn("tcp accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			if now, last := time.Now().UnixNano(), l.lastLimitLog.Load(); now-last > int64(time.Second) && l.lastLimitLog.CompareAndSwap(last, now) {
				l.log.Warn("tcp connection limit reached, closing new connections", "client", c.RemoteAddr(), "limit", l.opt.MaxTCPConns, "tls", ln == l.tlsLn)
			}
			c.Close()
			continue
		}
		l.mu.Lock()
		l.open[c] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(1)
		go l.serveConn(c, sem)
	}
}

func (l *Listener) serveConn(c net.Conn, sem chan struct{}) {
	defer func() {
		l.mu.Lock()
		delete(l.open, c)
		l.mu.Unlock()
		c.Close()
		<-sem
		l.wg.Done()
	}()
	if l.handshake(c) != nil {
		return
	}
	src := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	var wmu sync.Mutex
	// write sends a deferred (forwarded) answer. A write that fails may
	// have sent part of the frame, after which the stream cannot be read:
	// the connection is closed, which also ends the read loop.
	write := func(_ netip.AddrPort, b []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		frame := make([]byte, 2+len(b))
		binary.BigEndian.PutUint16(frame, uint16(len(b)))
		copy(frame[2:], b)
		c.SetWriteDeadline(time.Now().Add(l.opt.TCPIdleTimeout))
		if _, err := c.Write(frame); err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.log.Debug("tcp write", "client", src, "err", err)
			}
			c.Close()
		}
	}
	buf := make([]byte, 65535)
	out := make([]byte, 2, 65537)
	for {
		c.SetReadDeadline(time.Now().Add(l.opt.TCPIdleTimeout))
		if _, err := io.ReadFull(c, buf[:2]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(buf))
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return
		}
		resp := l.respond(buf[:n], out[2:2], src, true, write).Msg
		if resp == nil {
			continue
		}
		wmu.Lock()
		frame := append(out[:2], resp...) // resp was built in out[2:]
		binary.BigEndian.PutUint16(frame, uint16(len(resp)))
		c.SetWriteDeadline(time.Now().Add(l.opt.TCPIdleTimeout))
		_, err := c.Write(frame)
		wmu.Unlock()
		if err != nil {
			return
		}
	}
}
