package resolver

import (
	"fmt"

	"github.com/miekg/dns"
)

// packChecked packs m and makes sure the result unpacks again. miekg/dns
// unpacks some malformed records it then packs into bytes it cannot read
// (an SOA with an empty RDATA packs two missing names): an upstream reply
// that does not survive the round trip is an upstream failure, never a
// cached or forwarded answer a client cannot parse.
func packChecked(m *dns.Msg) ([]byte, error) {
	wire, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack reply: %w", err)
	}
	var check dns.Msg
	if err := check.Unpack(wire); err != nil {
		return nil, fmt.Errorf("reply does not survive packing: %w", err)
	}
	return wire, nil
}

// recoverPanic, deferred on the forwarder's goroutines, turns a panic (in
// the resolution or in the caller's done callback) into a dropped query:
// on those goroutines nothing else would stop it from ending the process.
func (f *Forwarder) recoverPanic(q *Question) {
	if r := recover(); r != nil {
		f.metrics.panics.Add(1)
		f.log.Error("panic answering a forwarded query", "q", keyString(nameOf(q.Wire), q.Type), "panic", r)
	}
}
