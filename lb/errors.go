package lb

import (
	"errors"
	"fmt"

	"github.com/miekg/dns"
)

// Errors returned by Balancer.Pick, Pool.DialContext and RoundTripper.RoundTrip.
// Callers compare with errors.Is; the balancer wraps them with the reason (the
// last resolution error, for instance) when it knows one.
var (
	// ErrNotReady: the balancer has not finished its first resolution yet.
	// Pool.DialContext and RoundTripper wait (bounded by the request context)
	// instead of returning it; Pick, which never blocks, returns it.
	ErrNotReady = errors.New("lb: no resolution yet")
	// ErrNoEndpoints: the balancer has never had a usable endpoint (every
	// resolution so far failed or came back empty).
	ErrNoEndpoints = errors.New("lb: no endpoints")
	// ErrNoService: the DNS answered a single SRV record with target "."
	// (RFC 2782: the service is decidedly not available at this domain).
	ErrNoService = errors.New("lb: service not available (SRV target \".\")")
	// ErrEmptyResolution: a resolution returned no address (NXDOMAIN, NODATA or
	// no usable record). The balancer keeps its last good endpoint set.
	ErrEmptyResolution = errors.New("lb: resolution returned no endpoints")
	// ErrClosed: the balancer or pool has been closed.
	ErrClosed = errors.New("lb: closed")
	// ErrEndpointRemoved: a connection made by Pool.DialContext refuses to start
	// a new exchange because its endpoint left the DNS answer (it is draining).
	ErrEndpointRemoved = errors.New("lb: endpoint removed from the service")
)

// DialError is returned (wrapped) when connecting to a picked endpoint fails.
// Nothing has been sent to the endpoint, so the RoundTripper retries the request
// on another endpoint whatever its method (when its body can be replayed).
type DialError struct {
	Addr string // the endpoint address that was dialled
	Err  error  // the dialler's error
}

// Error implements error.
func (e *DialError) Error() string { return fmt.Sprintf("lb: dial %s: %v", e.Addr, e.Err) }

// Unwrap returns the dialler's error.
func (e *DialError) Unwrap() error { return e.Err }

// RcodeError reports a DNS answer whose response code is neither NOERROR nor
// NXDOMAIN (SERVFAIL, REFUSED, ...). The Resolver returns it wrapped.
type RcodeError struct {
	Name  string // the queried name
	Rcode int    // the DNS response code (github.com/miekg/dns Rcode* constants)
}

// Error implements error.
func (e *RcodeError) Error() string {
	return fmt.Sprintf("lb: DNS answered %s for %s", dns.RcodeToString[e.Rcode], e.Name)
}
