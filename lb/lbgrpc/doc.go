// Package lbgrpc plugs clusterdns's client-side balancer (package lb) into
// grpc-go, in one import:
//
//	import _ "github.com/clusterdns/clusterdns/lb/lbgrpc"
//
//	conn, err := grpc.NewClient("clusterdns:///web.default.svc.cluster.local:8080",
//		grpc.WithTransportCredentials(insecure.NewCredentials()),
//		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"clusterdns_p2c":{}}]}`))
//
// It registers, in its init function (grpc's registries are global by design):
//
//   - the resolver for the scheme "clusterdns" (Scheme). Targets are
//     "clusterdns:///<name>:<port>" (A/AAAA) or
//     "clusterdns:///_<port-name>._<proto>.<name>" (SRV, which gives each
//     endpoint's port, priority and weight), with an optional DNS server in the
//     authority: "clusterdns://127.0.0.1:5353/<...>" (port 53 when omitted).
//     Without one the nameservers of /etc/resolv.conf are used. Unlike grpc's
//     own "dns" resolver, it re-resolves when the records' TTL runs out (never
//     sooner than a floor, one second by default) as well as when grpc asks
//     (ResolveNow), so endpoints added by a scale-up get traffic within a TTL;
//     it keeps the last good set when DNS fails or answers empty. The
//     resolution itself is lb's: lb.Resolver and its Source, scheduled by an
//     lb.Balancer, not a second DNS client.
//   - the balancers "clusterdns_p2c", "clusterdns_least_request",
//     "clusterdns_weighted", "clusterdns_maglev", "clusterdns_round_robin" and
//     "clusterdns_random" (one per lb policy), chosen by service config.
//     clusterdns_p2c is latency-aware (peak EWMA, see package lb): each pick's
//     Done carries the RPC's duration into its endpoint's latency estimate, so
//     a slow backend loses the choice even when outstanding counts tie. For a
//     stream Done comes at its end, so channels of long-lived streams should
//     use clusterdns_least_request (outstanding RPCs alone). Their configuration
//     (Config) adds zone preference, the metadata key that feeds consistent
//     hashing, and outlier ejection after consecutive failures whose status
//     codes are configurable. Each balancer keeps an lb.Balancer over its READY
//     subchannels, so the same policies, priority and zone filtering, outlier
//     ejection and outstanding-request counters pick for net/http (lb.Pool) and
//     for gRPC.
//
// The balancer follows grpc-go's resolver → balancer → picker design: every
// change of the address set or of a subchannel's state publishes a new picker;
// Pick never blocks and, without a metadata hash key, never allocates (the
// per-RPC record that times a call is recycled through a sync.Pool).
package lbgrpc
