package server

import "encoding/binary"

// Answers written at query time instead of prepared: a service's SRV
// answers (srv.go), a headless service's addresses (headless.go) and zone
// hints (zonehints.go), which are liveAnswers at the service's names; and
// endpoint names (host.go) and reverse names of cluster addresses (ptr.go),
// which have no node of their own. There are as many of them as endpoints,
// or they change with every endpoint change, so they are not prepared:
// each answer is a handful of records packed by hand into the response
// buffer, without allocation. This file holds what they share.

// liveAnswer is an answer written at query time from a service, for those
// that would be too large to prepare or change too often: SRV answers
// (*srvSource), whose records grow with endpoints times ports, a headless
// service's addresses (*addrSource) and its zone hints (*zonesSource).
type liveAnswer interface {
	// write writes the answer to q into out (reusing its storage) with
	// records of the given TTL, without allocating when out has room.
	write(out []byte, q *query, req []byte, ttl uint32) []byte
}

// startAnswer copies the question and sets an authoritative NOERROR
// header with ancount records to follow.
func startAnswer(out []byte, q *query, req []byte, ancount int) []byte {
	out = append(out[:0], req[:q.qend]...)
	binary.BigEndian.PutUint16(out[2:], q.flags&(flagRD|flagCD)|flagQR|flagAA)
	binary.BigEndian.PutUint16(out[4:], 1)
	binary.BigEndian.PutUint16(out[6:], uint16(ancount))
	binary.BigEndian.PutUint16(out[8:], 0)
	binary.BigEndian.PutUint16(out[10:], 0)
	return out
}

// appendRRHeader appends a record owned by the question name (a pointer to
// offset 12) up to its RDLENGTH.
func appendRRHeader(out []byte, rrtype uint16, ttl uint32, rdlen int) []byte {
	return append(out, 0xC0, headerLen, byte(rrtype>>8), byte(rrtype), 0, 1,
		byte(ttl>>24), byte(ttl>>16), byte(ttl>>8), byte(ttl), byte(rdlen>>8), byte(rdlen))
}
