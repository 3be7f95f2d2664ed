package lb

import (
	"fmt"
	"strings"

	"github.com/clusterdns/clusterdns/lb/policy"
)

// The policy vocabulary lives in lb/policy, which the DNS server shares
// without depending on this client library; these aliases keep it lb's
// public API.
type (
	// Candidate is policy.Candidate: what a Policy knows about one choice.
	Candidate = policy.Candidate
	// Selector is policy.Selector: it picks one of its Policy's candidates
	// without blocking or allocating.
	Selector = policy.Selector
	// Policy is policy.Policy: it builds Selectors when the set changes.
	Policy = policy.Policy
)

// RoundRobin returns policy.RoundRobin: cycle through the candidates.
func RoundRobin() Policy { return policy.RoundRobin() }

// Random returns policy.Random: a candidate uniformly at random.
func Random() Policy { return policy.Random() }

// P2C returns policy.P2C: the power of two choices on latency estimate ×
// (outstanding requests + 1), Finagle's and Linkerd's peak-EWMA balancer.
func P2C() Policy { return policy.P2C() }

// LeastRequest returns policy.LeastRequest: the power of two choices on
// outstanding requests alone.
func LeastRequest() Policy { return policy.LeastRequest() }

// Weighted returns policy.Weighted: RFC 2782 weighted random.
func Weighted() Policy { return policy.Weighted() }

// PolicyByName returns the policy called name: "round_robin", "random", "p2c"
// (also "peak_ewma"), "least_request", "maglev" or "weighted". Configuration
// code and cmd/lbcall call it.
func PolicyByName(name string) (Policy, error) {
	switch strings.ToLower(strings.ReplaceAll(name, "-", "_")) {
	case "round_robin", "roundrobin", "rr":
		return RoundRobin(), nil
	case "random":
		return Random(), nil
	case "p2c", "peak_ewma", "ewma":
		return P2C(), nil
	case "least_request", "least_outstanding":
		return LeastRequest(), nil
	case "maglev", "hash", "consistent_hash":
		return Maglev(), nil
	case "weighted", "srv", "rfc2782":
		return Weighted(), nil
	}
	return nil, fmt.Errorf("lb: unknown policy %q (want round_robin, random, p2c, least_request, maglev or weighted)", name)
}
