package server

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/dnswire"
	"github.com/clusterdns/clusterdns/lb/policy"
)

// Answer ordering: for names with several addresses the order of A/AAAA
// records changes per query, so clients that take the first address spread
// their load. The policies are lb/policy's (shared with the client
// library lb): the record the selector picks comes first, the others follow
// in their order (a rotation). Rotating costs a copy of the records, no
// allocation.

// OrderOff keeps answers in their stored order.
const OrderOff = "off"

// orderPolicy returns the policy for a configured name, nil for "off".
func orderPolicy(name string) (policy.Policy, error) {
	switch name {
	case "", OrderOff:
		return nil, nil
	case "round_robin":
		return policy.RoundRobin(), nil
	case "random":
		return policy.Random(), nil
	}
	return nil, fmt.Errorf("answer order %q: want off, round_robin or random", name)
}

// rotation describes a run of same-size address records in a packed
// response that may be reordered: each record's owner is a compression
// pointer to a name before the run, so no pointer refers into the run.
type rotation struct {
	start, size, n int
	sel            policy.Selector
}

// findRun locates the address records of the answer section that can be
// rotated (two or more A, or AAAA, records in a row). ok is false when
// there is nothing to rotate or the layout does not allow it.
func findRun(msg []byte) (start, size, n int, ok bool) {
	if len(msg) < headerLen {
		return 0, 0, 0, false
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	an := int(binary.BigEndian.Uint16(msg[6:]))
	off := headerLen
	for range qd {
		var err error
		if off, err = dnswire.SkipName(msg, off); err != nil {
			return 0, 0, 0, false
		}
		off += 4
	}
	var typ uint16
	for i := 0; i < an; i++ {
		// Owner: must be a pointer to an earlier name for a rotatable record.
		if off+12 > len(msg) {
			return 0, 0, 0, false
		}
		isPtr := msg[off]&0xC0 == 0xC0
		ptr := int(binary.BigEndian.Uint16(msg[off:]) & 0x3FFF)
		nameEnd, err := dnswire.SkipName(msg, off)
		if err != nil || nameEnd+10 > len(msg) {
			return 0, 0, 0, false
		}
		t := binary.BigEndian.Uint16(msg[nameEnd:])
		rdlen := int(binary.BigEndian.Uint16(msg[nameEnd+8:]))
		end := nameEnd + 10 + rdlen
		if end > len(msg) {
			return 0, 0, 0, false
		}
		fits := isPtr && (t == dns.TypeA || t == dns.TypeAAAA)
		switch {
		case n > 0 && fits && t == typ && end-off == size && ptr < start:
			n++
		case n >= 2:
			return start, size, n, true
		case fits:
			start, size, n, typ = off, end-off, 1, t
			if ptr >= start {
				n = 0
			}
		default:
			n = 0
		}
		off = end
	}
	return start, size, n, n >= 2
}

// newRotation prepares the rotation of a packed answer under policy p, or
// returns nil when it has nothing to rotate.
func newRotation(wire []byte, p policy.Policy) *rotation {
	if p == nil {
		return nil
	}
	start, size, n, ok := findRun(wire)
	if !ok {
		return nil
	}
	return &rotation{start: start, size: size, n: n, sel: p.Build(make([]policy.Candidate, n))}
}

// rotate moves the run so that record k comes first, in place.
func rotate(b []byte, start, size, n, k int) {
	if k <= 0 || k >= n {
		return
	}
	run := b[start : start+size*n]
	slices.Reverse(run)
	slices.Reverse(run[:size*(n-k)])
	slices.Reverse(run[size*(n-k):])
}
