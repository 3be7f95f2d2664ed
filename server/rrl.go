package server

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clusterdns/clusterdns/internal/dnswire"
)

// Response rate limiting (RRL), a simplified form of BIND's: a UDP
// response is charged to a token bucket per (client network, answer key),
// where the client network is the /24 of an IPv4 client or the /56 of an
// IPv6 one, and the answer key is the question's name and type for a
// NOERROR response (answer or NODATA), one bucket for every NXDOMAIN of
// that network (a random-subdomain flood shares it), and one for every
// other rcode (errors). A bucket earns ResponsesPerSecond tokens a second,
// holds at most one second's worth, and may go into debt for Window
// seconds' worth, so a flood keeps being limited for up to Window after it
// stops. Over the limit a response is dropped, except every Slip-th, which
// is sent truncated (TC=1, question only) so that a real client behind a
// spoofed address retries over TCP, which is never limited. Spoofing
// victims thus receive a fraction of the traffic; honest clients see a
// retry.
//
// The table is a fixed array of buckets indexed by a keyed hash: memory
// does not grow with the number of clients or names; a bucket whose slot
// is taken by another key starts afresh (the oldest is forgotten).

// RRLOptions configure response rate limiting.
type RRLOptions struct {
	// ResponsesPerSecond each (client network, answer key) may receive;
	// 0 turns rate limiting off.
	ResponsesPerSecond int
	// Slip: over the limit every Slip-th response is sent truncated (TC=1,
	// empty) instead of dropped; 0 drops them all, 1 truncates them all.
	Slip int
	// Window is how many seconds of debt a bucket may build up (0: 15 s):
	// a client keeps being limited for up to Window after a flood.
	Window time.Duration
	// Entries is the size of the bucket table (0: 65,536).
	Entries int
}

// rrlAction is what to do with a response.
type rrlAction uint8

const (
	rrlSend rrlAction = iota
	rrlDrop
	rrlSlip
)

// rrlStripes is the number of locks guarding the table.
const rrlStripes = 64

// rrlUnit is one token in a bucket's fixed-point balance.
const rrlUnit = int64(time.Second)

type rrlBucket struct {
	key     uint64 // 0: empty
	balance int64  // tokens × rrlUnit
	last    int64  // unix nanoseconds of the last update
	over    uint32 // responses over the limit since the bucket started
}

// RRL is a response rate limiter for the UDP listener; make one with NewRRL
// and pass it in ListenOptions.RRL. It is a prometheus.Collector of its
// counts. Safe for concurrent use; charging a response never allocates and
// holds one of 64 striped locks for a few instructions.
type RRL struct {
	opt      RRLOptions
	seed     maphash.Seed
	buckets  []rrlBucket
	locks    [rrlStripes]sync.Mutex
	capacity int64 // one second's worth
	floor    int64 // Window's worth of debt, negative
	now      func() time.Time

	sent, dropped, slipped atomic.Uint64
	descResp               *prometheus.Desc
}

// NewRRL validates the options and returns a limiter, or nil when
// ResponsesPerSecond is 0 (off).
func NewRRL(opt RRLOptions) (*RRL, error) {
	switch {
	case opt.ResponsesPerSecond < 0:
		return nil, fmt.Errorf("rrl responses per second %d: want 0 (off) or more", opt.ResponsesPerSecond)
	case opt.Slip < 0:
		return nil, fmt.Errorf("rrl slip %d: want 0 or more", opt.Slip)
	case opt.Window < 0:
		return nil, fmt.Errorf("rrl window %s: want a positive duration", opt.Window)
	case opt.Entries < 0:
		return nil, fmt.Errorf("rrl entries %d: want 0 or more", opt.Entries)
	}
	if opt.ResponsesPerSecond == 0 {
		return nil, nil
	}
	if opt.Window == 0 {
		opt.Window = 15 * time.Second
	}
	if opt.Entries == 0 {
		opt.Entries = 1 << 16
	}
	rate := int64(opt.ResponsesPerSecond)
	return &RRL{
		opt:      opt,
		seed:     maphash.MakeSeed(),
		buckets:  make([]rrlBucket, opt.Entries),
		capacity: rate * rrlUnit,
		floor:    -rate * rrlUnit * int64(max(opt.Window/time.Second, 1)),
		now:      time.Now,
		descResp: prometheus.NewDesc("clusterdns_rrl_responses_total",
			"UDP responses seen by response rate limiting, by what was done: sent, dropped, or slipped (sent truncated).", []string{"action"}, nil),
	}, nil
}

// Counts returns how many responses were sent, dropped and slipped.
func (r *RRL) Counts() (sent, dropped, slipped uint64) {
	return r.sent.Load(), r.dropped.Load(), r.slipped.Load()
}

// key hashes the client network and the answer key of a response.
func (r *RRL) key(client netip.Addr, resp []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(r.seed)
	client = client.Unmap()
	if client.Is4() {
		a := client.As4()
		h.Write(a[:3]) // /24
		h.WriteByte(4)
	} else {
		a := client.As16()
		h.Write(a[:7]) // /56
		h.WriteByte(6)
	}
	rcode := resp[3] & 0xF
	switch rcode {
	case dns.RcodeSuccess:
		h.WriteByte('R')
		// The question as the response carries it (uncompressed: the
		// handler copies the client's), lower-cased, and its type.
		if binary.BigEndian.Uint16(resp[4:]) > 0 {
			off := headerLen
			for off < len(resp) && resp[off] != 0 && resp[off]&0xC0 == 0 {
				end := min(off+1+int(resp[off]), len(resp))
				var label [1 + 63]byte
				h.Write(dnswire.AppendLower(label[:0], resp[off:end]))
				off = end
			}
			if off+3 <= len(resp) {
				h.Write(resp[off+1 : off+3])
			}
		}
	case dns.RcodeNameError:
		h.WriteByte('N')
	default:
		h.WriteByte('E')
	}
	k := h.Sum64()
	if k == 0 {
		k = 1
	}
	return k
}

// check charges one response to its bucket and says what to do with it.
func (r *RRL) check(client netip.Addr, resp []byte) rrlAction {
	if len(resp) < headerLen {
		return rrlSend
	}
	k := r.key(client, resp)
	i := k % uint64(len(r.buckets))
	now := r.now().UnixNano()
	mu := &r.locks[i%rrlStripes]
	mu.Lock()
	b := &r.buckets[i]
	if b.key != k {
		*b = rrlBucket{key: k, balance: r.capacity, last: now}
	} else if elapsed := now - b.last; elapsed > 0 {
		// elapsed ns earn elapsed × rate / 1 s tokens, i.e. elapsed × rate
		// units; bound elapsed so the product cannot overflow.
		earned := min(elapsed, int64(time.Hour)) * int64(r.opt.ResponsesPerSecond)
		b.balance = min(b.balance+earned, r.capacity)
		b.last = now
	}
	act := rrlSend
	if b.balance >= rrlUnit {
		b.balance -= rrlUnit
	} else {
		b.balance = max(b.balance-rrlUnit, r.floor)
		b.over++
		act = rrlDrop
		if r.opt.Slip > 0 && b.over%uint32(r.opt.Slip) == 0 {
			act = rrlSlip
		}
	}
	mu.Unlock()
	switch act {
	case rrlSend:
		r.sent.Add(1)
	case rrlDrop:
		r.dropped.Add(1)
	case rrlSlip:
		r.slipped.Add(1)
	}
	return act
}

// filter applies the limit to a UDP response: it returns the response to
// send (resp, or resp cut in place to a truncated slip), or nil to drop it.
func (r *RRL) filter(client netip.Addr, resp []byte) []byte {
	switch r.check(client, resp) {
	case rrlDrop:
		return nil
	case rrlSlip:
		return slipResponse(resp)
	}
	return resp
}

// slipResponse cuts resp, in place, to its header and question, with TC=1
// and no records (no OPT either): "ask again over TCP".
func slipResponse(resp []byte) []byte {
	end := headerLen
	qd := binary.BigEndian.Uint16(resp[4:])
	if qd > 0 {
		off := headerLen
		for off < len(resp) && resp[off] != 0 && resp[off]&0xC0 == 0 {
			off += 1 + int(resp[off])
		}
		if off < len(resp) && resp[off] == 0 && off+5 <= len(resp) {
			end = off + 5
		} else {
			qd = 0 // not a question this function can copy
		}
	}
	out := resp[:end]
	binary.BigEndian.PutUint16(out[2:], binary.BigEndian.Uint16(out[2:])|flagTC)
	binary.BigEndian.PutUint16(out[4:], min(qd, 1))
	binary.BigEndian.PutUint16(out[6:], 0)
	binary.BigEndian.PutUint16(out[8:], 0)
	binary.BigEndian.PutUint16(out[10:], 0)
	return out
}

// Describe implements prometheus.Collector.
func (r *RRL) Describe(ch chan<- *prometheus.Desc) { ch <- r.descResp }

// Collect implements prometheus.Collector.
func (r *RRL) Collect(ch chan<- prometheus.Metric) {
	sent, dropped, slipped := r.Counts()
	ch <- prometheus.MustNewConstMetric(r.descResp, prometheus.CounterValue, float64(sent), "sent")
	ch <- prometheus.MustNewConstMetric(r.descResp, prometheus.CounterValue, float64(dropped), "dropped")
	ch <- prometheus.MustNewConstMetric(r.descResp, prometheus.CounterValue, float64(slipped), "slipped")
}
