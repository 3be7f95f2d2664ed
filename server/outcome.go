package server

import (
	"encoding/binary"

	"github.com/miekg/dns"
)

// Outcome is what became of one request.
type Outcome uint8

// The outcomes of a request. The first six come with a response to send
// now; Forwarded and Dropped without one.
const (
	// Success: records answer the question (NOERROR with an answer).
	Success Outcome = iota
	// NoData: the name exists without records of the type (NOERROR, no
	// answer).
	NoData
	// NameError: the name does not exist (NXDOMAIN).
	NameError
	// Refused: the question is outside what this client may ask (REFUSED).
	Refused
	// ServerFailure: no answer could be given (SERVFAIL), such as for a
	// cluster name before the first snapshot.
	ServerFailure
	// Failed: any other error rcode (FORMERR, NOTIMP, BADVERS).
	Failed
	// Forwarded: the question went to the fallback, which sends the answer
	// later through the send function given to Handle.
	Forwarded
	// Dropped: nothing is sent (a packet too short to answer, or a query
	// whose answering panicked).
	Dropped
)

var outcomeNames = [...]string{"success", "nodata", "nxdomain", "refused", "servfail", "error", "forwarded", "dropped"}

// String names the outcome for logs.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Result is what Handle made of a request. It is returned by value and
// holds no pointer but Msg, so answering allocates nothing.
type Result struct {
	// Msg is the response to send now, built in the out buffer given to
	// Handle; nil when Outcome is Forwarded or Dropped.
	Msg []byte
	// Outcome is what became of the request.
	Outcome Outcome
	// Rcode is the response's rcode, extended (BADVERS is 16); 0 for
	// Forwarded and Dropped.
	Rcode int
	// Zone is where the question was answered (or handed on).
	Zone Zone
}

// Zone is where a query was answered (the requests metric's zone label):
// a cluster domain, a reverse name of a cluster address, a zone file,
// forwarded, refused, or other (malformed, unsupported opcode or class).
type Zone uint8

// String names the zone as the requests metric labels it.
func (z Zone) String() string {
	if int(z) < len(zoneNames) {
		return zoneNames[z]
	}
	return "unknown"
}

// answered is the result of a response built for a question answered in
// zone: its outcome follows from the rcode and the answer count.
func answered(msg []byte, zone Zone) Result {
	r := Result{Msg: msg, Rcode: int(msg[3] & 0xF), Zone: zone}
	switch r.Rcode {
	case dns.RcodeSuccess:
		r.Outcome = Success
		if binary.BigEndian.Uint16(msg[6:]) == 0 {
			r.Outcome = NoData
		}
	case dns.RcodeNameError:
		r.Outcome = NameError
	case dns.RcodeRefused:
		r.Outcome = Refused
	case dns.RcodeServerFailure:
		r.Outcome = ServerFailure
	default:
		r.Outcome = Failed
	}
	return r
}

// authoritative reports whether the response speaks for a served zone
// (AA): data (an answer, NODATA or NXDOMAIN) from the cluster, reverse or
// file zones. Errors and forwarded answers are not authoritative.
func (r *Result) authoritative() bool {
	switch r.Zone {
	case zoneCluster, zoneReverse, zoneFile:
		return r.Outcome == Success || r.Outcome == NoData || r.Outcome == NameError
	}
	return false
}
