// Package lb is clusterdns's client-side load balancer: it resolves a cluster
// service through DNS and spreads calls over its endpoints.
//
// Layers, each usable alone:
//
//   - Policies (Policy, Selector, Candidate, defined in lb/policy and
//     shared with the DNS server): RoundRobin, Random, P2C, LeastRequest,
//     Maglev (consistent hashing) and Weighted (RFC 2782 SRV weights). They
//     know nothing of DNS or HTTP; the DNS server may use them to order
//     answers, the node proxy to choose backends.
//   - P2C, the default, is latency-aware, as Finagle's and Linkerd's
//     peak-EWMA balancers are: of two endpoints drawn at random it takes the
//     one with the lower latency estimate × (outstanding requests + 1). Each
//     Endpoint keeps a policy.PeakEWMA of its successful calls' latency, fed
//     by Endpoint.DoneLatency (the RoundTripper times each response header,
//     lb/lbgrpc each RPC). It decays with time (BalancerConfig.LatencyDecay,
//     1 s; Finagle and Linkerd use 10 s, see policy.DefaultLatencyDecay),
//     rises fast on slower answers (at most 1.75× per answer, so that one call
//     caught in a GC pause or a descheduled process does not condemn a fast
//     endpoint) and falls by at least 1/8 per faster answer. An endpoint that
//     has not answered yet takes one call while idle, so a scale-up's new
//     endpoints get traffic at once. Outstanding counts are small integers
//     that often tie, so P2C on them alone still sent 6-12% of calls to a
//     10× slower endpoint; the latency term breaks those ties. The price:
//     equal endpoints get uneven shares, following noise, at low
//     concurrency, and one that answered slowly once may get no call for
//     LatencyDecay × ln(how much slower). LeastRequest is P2C on outstanding
//     requests alone: even shares; for long-lived streams, whose "latency" is
//     their lifetime; and what P2C amounts to for Pool.DialContext, which
//     reports no latency. The latency-aware choice is the default rather
//     than a separately named policy because a user choosing "p2c" wants the
//     best least-loaded choice; "peak_ewma" is an alias of it.
//   - Balancer: one service's endpoint set and health. Every change of the set
//     or of an endpoint's health builds a new immutable picker published with
//     an atomic pointer (grpc-go's balancer/picker shape), so Pick never blocks
//     and never allocates. Outstanding-request counters live on the Endpoint
//     objects, shared by every picker. The picker offers the policy the
//     endpoints that are not ejected, of the lowest SRV priority present, in the
//     caller's zone when it has enough of them. Endpoint.Done reports the
//     outcome: consecutive failures eject an endpoint for a growing time,
//     never more than a bounded share of the set.
//   - Resolver and Source: DNS lookups with github.com/miekg/dns, SRV
//     (_port._proto.name) or A/AAAA, against a given server or
//     /etc/resolv.conf. A Balancer with a Source re-resolves when the TTL runs
//     out (not before a floor), soon after failures, with backoff after errors,
//     and keeps the last good set when a resolution fails or comes back empty;
//     endpoints that leave the answer drain.
//   - ZoneSource: where zones come from. TXTZones reads the TXT records
//     proposed to the server ("zone=<zone>" per endpoint hostname, or per
//     service under "_zones.<service>"); without them every endpoint is
//     zone-less and zone preference does nothing.
//   - Pool, DialContext and RoundTripper: the net/http integration. Pool keeps
//     one Balancer per service name "<svc>.<ns>.svc.<domain>"; Pool.DialContext
//     balances connections; RoundTripper balances every request by keeping one
//     http.Transport per endpoint (a Transport pools connections per host, so a
//     balancing dialer alone would not spread the requests of a keep-alive
//     client).
//
// Other protocols use Pool.Balancer (or NewBalancer) and Pick/Done directly.
package lb
