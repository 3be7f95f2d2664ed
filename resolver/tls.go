package resolver

// Upstreams over DNS over TLS (RFC 7858), written tls://ip[:port]#name:
// one connection per upstream, reused and pipelined (RFC 7766 §6.2.1.1:
// several queries in flight, answers matched by ID, in any order). A
// connection that fails is dropped and the next query dials again; the
// forwarder's failure counting and health probes treat a TLS upstream as
// any other.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// tlsIdle closes a connection with nothing in flight for this long.
const tlsIdle = 10 * time.Second

// tlsUpstream is the transport of one tls:// upstream.
type tlsUpstream struct {
	addr string
	cfg  *tls.Config
	mu   sync.Mutex
	conn *pipeConn // nil until dialled, and after it failed
	// dials counts connections made (tests check reuse).
	dials atomic.Int64
}

// parseTLSUpstream reads "ip[:port]#server-name" (the part after tls://);
// the port defaults to 853. roots nil means the system's.
func parseTLSUpstream(s string, roots *x509.CertPool) (*tlsUpstream, string, error) {
	hostPort, name, ok := strings.Cut(s, "#")
	if !ok || name == "" {
		return nil, "", fmt.Errorf("upstream tls://%s: want tls://ip[:port]#server-name", s)
	}
	return &tlsUpstream{cfg: &tls.Config{ServerName: name, RootCAs: roots, MinVersion: tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(8)}}, hostPort, nil
}

// pipeConn is one TLS connection with its queries in flight.
type pipeConn struct {
	c       *tls.Conn
	wmu     sync.Mutex // one frame written at a time
	mu      sync.Mutex
	pending map[uint16]chan *dns.Msg
	err     error         // why it ended, under mu
	done    chan struct{} // closed when it ended
}

// get returns the live connection, dialling one when there is none.
func (t *tlsUpstream) get(ctx context.Context) (*pipeConn, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		select {
		case <-t.conn.done:
			t.conn = nil
		default:
			return t.conn, true, nil
		}
	}
	d := tls.Dialer{Config: t.cfg}
	nc, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, false, err
	}
	t.dials.Add(1)
	pc := &pipeConn{c: nc.(*tls.Conn), pending: map[uint16]chan *dns.Msg{}, done: make(chan struct{})}
	go pc.read()
	t.conn = pc
	return pc, false, nil
}

// close ends the connection with err; every query waiting fails.
func (p *pipeConn) close(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return
	}
	p.err = err
	close(p.done)
	p.c.Close()
}

// read delivers answers to their queries by ID until the connection fails
// or stays idle for tlsIdle.
func (p *pipeConn) read() {
	var hdr [2]byte
	for {
		p.c.SetReadDeadline(time.Now().Add(tlsIdle))
		if _, err := io.ReadFull(p.c, hdr[:]); err != nil {
			p.close(fmt.Errorf("read: %w", err))
			return
		}
		buf := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(p.c, buf); err != nil {
			p.close(fmt.Errorf("read: %w", err))
			return
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf); err != nil {
			p.close(fmt.Errorf("unpack answer: %w", err))
			return
		}
		p.mu.Lock()
		ch := p.pending[m.Id]
		delete(p.pending, m.Id)
		p.mu.Unlock()
		if ch != nil {
			ch <- m // buffered
		}
	}
}

// exchange sends req (its ID replaced) on the shared connection and waits
// for its answer, ctx or the connection's end. A reused connection that
// the server had closed is dialled again once.
func (t *tlsUpstream) exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	for attempt := 0; ; attempt++ {
		pc, reused, err := t.get(ctx)
		if err != nil {
			return nil, fmt.Errorf("dial tls: %w", err)
		}
		m, err := pc.exchange(ctx, req)
		if err != nil && reused && attempt == 0 && ctx.Err() == nil && errors.Is(err, errConnEnded) {
			continue
		}
		return m, err
	}
}

var errConnEnded = errors.New("tls connection ended")

func (p *pipeConn) exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	ch := make(chan *dns.Msg, 1)
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", errConnEnded, p.err)
	}
	id := uint16(rand.Uint32())
	for p.pending[id] != nil {
		id++
	}
	p.pending[id] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
	}()
	q := req.Copy()
	q.Id = id
	wire, err := q.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	frame := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(wire)), uint16(len(wire)))
	frame = append(frame, wire...)
	p.wmu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		p.c.SetWriteDeadline(dl)
	}
	_, err = p.c.Write(frame)
	p.wmu.Unlock()
	if err != nil {
		p.close(err)
		return nil, fmt.Errorf("%w: write: %w", errConnEnded, err)
	}
	select {
	case m := <-ch:
		if len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, req.Question[0].Name) || m.Question[0].Qtype != req.Question[0].Qtype {
			return nil, errors.New("answer to another question")
		}
		m.Id = req.Id
		return m, nil
	case <-p.done:
		p.mu.Lock()
		err := p.err
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", errConnEnded, err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
