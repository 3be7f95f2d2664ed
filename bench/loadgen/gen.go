package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
)

// query is one line of the query file in wire form: the message with ID 0
// and the length of header plus question, which an answer must repeat.
type query struct {
	wire  []byte
	qlen  int
	label string // "name type", for errors
}

// loadQueries reads a dnsperf query file ("name type" per line; blank
// lines and lines starting with # or ; skipped) and encodes each line; an
// EDNS buffer size above 0 adds an OPT record, as dnsperf -e does.
func loadQueries(r io.Reader, ednsSize int) ([]query, error) {
	var qs []query
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' || text[0] == ';' {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: %q: want \"name type\"", line, text)
		}
		t, ok := dns.StringToType[strings.ToUpper(f[1])]
		if !ok {
			return nil, fmt.Errorf("line %d: unknown type %q", line, f[1])
		}
		if _, ok := dns.IsDomainName(f[0]); !ok {
			return nil, fmt.Errorf("line %d: bad name %q", line, f[0])
		}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(f[0]), t)
		m.Id = 0
		qonly, err := m.Pack()
		if err != nil {
			return nil, fmt.Errorf("line %d: %q: %w", line, text, err)
		}
		if ednsSize > 0 {
			m.SetEdns0(uint16(ednsSize), false)
		}
		wire, err := m.Pack()
		if err != nil {
			return nil, fmt.Errorf("line %d: %q: %w", line, text, err)
		}
		qs = append(qs, query{wire: wire, qlen: len(qonly), label: text})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read queries: %w", err)
	}
	if len(qs) == 0 {
		return nil, errors.New("no queries in the file")
	}
	return qs, nil
}

// errConnRefused is what a connected socket reports after a query met a
// port nobody listens on (the server stopped).
var errConnRefused = syscall.ECONNREFUSED

// config is what every worker shares.
type config struct {
	server   netip.AddrPort
	queries  []query
	sockets  int
	window   int           // queries in flight per socket
	batch    int           // messages per sendmmsg/recvmmsg
	rate     float64       // queries per second per socket; 0: as fast as answered
	timeout  time.Duration // an unanswered query is lost after this
	start    time.Time
	deadline time.Time // no query is sent after this
}

// stats is one worker's counts.
type stats struct {
	sent, answered, inWindow, lost, unexpected, mismatched uint64
	rcodes                                                 [16]uint64
	lat                                                    *hist
	err                                                    error
}

func (s *stats) merge(o *stats) {
	s.sent += o.sent
	s.answered += o.answered
	s.inWindow += o.inWindow
	s.lost += o.lost
	s.unexpected += o.unexpected
	s.mismatched += o.mismatched
	for i, v := range o.rcodes {
		s.rcodes[i] += v
	}
	s.lat.merge(o.lat)
	if s.err == nil {
		s.err = o.err
	}
}

// worker drives one connected UDP socket: it keeps up to window queries
// in flight, sending and receiving in batches (sendmmsg and recvmmsg
// through golang.org/x/net/ipv4), and times each answer by its ID.
type worker struct {
	cfg     *config
	conn    *net.UDPConn
	pc      *ipv4.PacketConn
	next    int // the next query to send (index into cfg.queries)
	sentAt  [1 << 16]int64
	qidx    [1 << 16]int32
	nextID  uint16
	flight  int
	out, in []ipv4.Message
	st      stats
}

func newWorker(cfg *config, first int) (*worker, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(cfg.server))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", cfg.server, err)
	}
	// A deep receive queue, so a burst of answers is not dropped while
	// the worker is busy sending.
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	w := &worker{cfg: cfg, conn: c, pc: ipv4.NewPacketConn(c), next: first, st: stats{lat: newHist()}}
	w.out = make([]ipv4.Message, cfg.batch)
	w.in = make([]ipv4.Message, cfg.batch)
	for i := range w.out {
		w.out[i].Buffers = [][]byte{make([]byte, 0, 512)}
		w.in[i].Buffers = [][]byte{make([]byte, 65535)}
	}
	return w, nil
}

// run sends until the deadline, then waits up to the timeout for the
// queries still in flight; its counts are in w.st.
func (w *worker) run() {
	defer w.conn.Close()
	cfg := w.cfg
	var lastSweep time.Time
	for {
		now := time.Now()
		sending := now.Before(cfg.deadline)
		if !sending && (w.flight == 0 || now.Sub(cfg.deadline) > cfg.timeout) {
			break
		}
		var wake time.Time // when to stop waiting for answers
		if sending {
			k := min(cfg.window-w.flight, cfg.batch)
			if cfg.rate > 0 {
				// Query number i (from 0) is due i/rate after the start.
				due := int64(cfg.rate*now.Sub(cfg.start).Seconds()) + 1 - int64(w.st.sent)
				k = int(min(int64(k), max(due, 0)))
			}
			if k > 0 {
				if err := w.send(k, now); err != nil {
					w.st.err = err
					return
				}
			}
			if cfg.rate > 0 && w.flight < cfg.window {
				wake = cfg.start.Add(time.Duration(float64(w.st.sent) / cfg.rate * float64(time.Second)))
			}
		}
		if now.Sub(lastSweep) > cfg.timeout/4 {
			w.sweep(now)
			lastSweep = now
		}
		if w.flight == 0 && wake.IsZero() {
			continue
		}
		if wake.IsZero() || wake.After(now.Add(cfg.timeout/4)) {
			wake = now.Add(cfg.timeout / 4)
		}
		if !sending {
			wake = cfg.deadline.Add(cfg.timeout)
		}
		if err := w.receive(wake); err != nil {
			w.st.err = err
			return
		}
	}
	w.st.lost += uint64(w.flight)
}

// send sends k queries, each with an ID not in flight.
func (w *worker) send(k int, now time.Time) error {
	qs := w.cfg.queries
	t := now.UnixNano()
	for i := 0; i < k; i++ {
		for w.sentAt[w.nextID] != 0 {
			w.nextID++
		}
		id := w.nextID
		w.nextID++
		q := &qs[w.next]
		b := append(w.out[i].Buffers[0][:0], q.wire...)
		binary.BigEndian.PutUint16(b, id)
		w.out[i].Buffers[0] = b
		w.sentAt[id] = t
		w.qidx[id] = int32(w.next)
		if w.next++; w.next == len(qs) {
			w.next = 0
		}
	}
	for sent := 0; sent < k; {
		n, err := w.pc.WriteBatch(w.out[sent:k], 0)
		if err != nil {
			if errors.Is(err, errConnRefused) {
				// An earlier query met a closed port; these stay in
				// flight until the sweep counts them lost.
				break
			}
			return fmt.Errorf("send: %w", err)
		}
		sent += n
	}
	w.flight += k
	w.st.sent += uint64(k)
	return nil
}

// receive reads one batch of answers, waiting until wake at most.
func (w *worker) receive(wake time.Time) error {
	if err := w.conn.SetReadDeadline(wake); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	n, err := w.pc.ReadBatch(w.in, 0)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		var op *net.OpError
		if errors.As(err, &op) && errors.Is(op.Err, errConnRefused) {
			return nil // an earlier query met a closed port; keep counting it lost
		}
		return fmt.Errorf("receive: %w", err)
	}
	now := time.Now()
	for i := 0; i < n; i++ {
		w.answer(w.in[i].Buffers[0][:w.in[i].N], now)
	}
	return nil
}

// answer checks and times one response.
func (w *worker) answer(b []byte, now time.Time) {
	if len(b) < 12 || b[2]&0x80 == 0 {
		w.st.unexpected++
		return
	}
	id := binary.BigEndian.Uint16(b)
	t := w.sentAt[id]
	if t == 0 {
		w.st.unexpected++ // late (already counted lost) or never sent
		return
	}
	q := &w.cfg.queries[w.qidx[id]]
	if len(b) < q.qlen || !bytes.EqualFold(b[12:q.qlen], q.wire[12:q.qlen]) || b[4] != 0 || b[5] != 1 {
		w.st.mismatched++
	}
	w.sentAt[id] = 0
	w.flight--
	w.st.answered++
	if !now.After(w.cfg.deadline) {
		w.st.inWindow++
	}
	w.st.rcodes[b[3]&0x0f]++
	w.st.lat.add(time.Duration(now.UnixNano() - t))
}

// sweep counts the queries older than the timeout as lost and frees their
// IDs.
func (w *worker) sweep(now time.Time) {
	if w.flight == 0 {
		return
	}
	old := now.Add(-w.cfg.timeout).UnixNano()
	for id, t := range w.sentAt {
		if t != 0 && t < old {
			w.sentAt[id] = 0
			w.flight--
			w.st.lost++
		}
	}
}
