package server

import (
	"encoding/binary"

	"github.com/miekg/dns"
)

// Size limits: the OPT record clusterdns appends and the truncation of
// responses too large for the transport.

// ednsSize is the UDP payload size clusterdns advertises (DNS flag day 2020).
const ednsSize = 1232

// truncationSize is the size of a response (without OPT) beyond which
// finish sends it truncated.
func truncationSize(q *query, tcp bool) int {
	limit := dns.MaxMsgSize
	if !tcp {
		limit = 512
		if q.edns {
			limit = int(q.udpSize)
		}
	}
	if q.edns {
		limit -= 11 // the OPT record finish appends
	}
	return limit
}

// finish returns r's response with the OPT record when the client sent
// one, truncated when longer than q.truncAt: TC=1 with the question only,
// and r's rcode and authority.
func finish(r Result, q *query, req []byte) []byte {
	resp := r.Msg
	if len(resp) > q.truncAt {
		resp = writeEmpty(resp, q, req, r.Rcode, r.authoritative())
		binary.BigEndian.PutUint16(resp[2:], binary.BigEndian.Uint16(resp[2:])|flagTC)
	}
	if q.edns {
		resp = appendOPT(resp, ednsSize, q.do, 0)
	}
	return resp
}
