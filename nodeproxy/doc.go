// Package nodeproxy makes Service addresses routable on a node with
// nftables, as kube-proxy's nftables mode does: ClusterIPs, NodePorts,
// LoadBalancer ingress IPs (not those of ipMode Proxy; only
// loadBalancerSourceRanges may reach them when set) and externalIPs are
// DNATed to an endpoint picked with equal probability among the usable
// ones. Usable is kube-proxy's rule (CategorizeEndpoints): the ready
// endpoints, narrowed by EndpointSlice node or zone hints when every ready
// endpoint has one and one names this node or its zone; when none is
// ready, the serving-and-terminating ones. externalTrafficPolicy Local
// sends external traffic only to this node's usable endpoints, without
// masquerade, and drops it when there are none (traffic from the node or
// the pod CIDRs still reaches every endpoint); internalTrafficPolicy Local
// does the same for ClusterIP traffic. A service without any usable
// endpoint is rejected at once. ClientIP session affinity, masquerade of
// hairpin and external traffic, TCP, UDP and SCTP, IPv4 and IPv6; stale UDP
// conntrack entries are deleted when an endpoint goes away. ServiceHealth
// serves the healthCheckNodePorts and ProxyHealth /healthz and /livez as
// kube-proxy does; Metrics carry kube-proxy's metric names.
//
// A multi-cluster ServiceImport of type ClusterSetIP (registry.ClusterSet)
// is routed as a ClusterIP with the same rules: each of its IPs and ports
// is DNATed to the usable endpoints of every cluster's MCS EndpointSlices
// (ready, else serving-and-terminating; remote topology hints are
// ignored), and rejected when there is none. It has no node ports,
// external addresses, traffic policies or session affinity. The Proxier
// keeps it under the key "<namespace>/clusterset:<name>", which no Service
// can have, and writes it in full syncs only: any change of the clusterset
// makes the Store publish a Full snapshot (mcs.go).
//
// # Who calls what
//
// cmd/nodeproxy builds a registry.Store fed by a source (the cluster files,
// or the Kubernetes API), a Tracker subscribed to it (Store.Subscribe(
// tracker.OnSnapshot)), a Proxier over knftables and NetlinkElements, and a
// Runner that loops over both. The Tracker only records which services
// changed (it runs under the Store's lock and never blocks); the Runner
// wakes on a change, waits so that syncs are at least MinInterval apart,
// takes all pending changes and has the Proxier write them, touching only
// the changed services: an nft transaction for new chains and sets (when
// there are any), ONE netlink batch for the set and map elements, an nft
// transaction for deletions (when there are any); see Proxier.apply. Each
// step is atomic and leaves a consistent table; after a failed one the
// Runner retries with backoff as a full resync, which rewrites the table
// in place while the previous rules keep forwarding (and, after a failed
// full sync, recreates it in one nft transaction). Proxier.Sync blocks for
// nft and the kernel.
//
// # Rule layout
//
// One table of its own, `inet clusterdns-nodeproxy` (one family, so one
// transaction covers IPv4 and IPv6):
//
//	nat-prerouting / nat-output      → services
//	services:   ip daddr . meta l4proto . th dport vmap @service-ips-v4
//	            fib daddr type local … meta l4proto . th dport vmap @service-nodeports-v4
//	            (ip daddr @nodeport-addresses-v4 … with --nodeport-addresses;
//	            and the same for ip6)
//	service-ips-v4:      10.96.0.100 . tcp . 80 : goto cluster-v4-tcp-n2
//	                     198.18.0.10 . tcp . 80 : goto external-v4-tcp-n2   (LB IP / externalIP)
//	                     198.18.0.20 . tcp . 80 : goto external-local-v4-tcp-n2-l1
//	                     10.96.0.41 . tcp . 80 : drop   (internalTrafficPolicy Local, none here)
//	cluster-v4-tcp-n2:   dnat ip to ip daddr . tcp dport . numgen random mod 2 map @endpoints-v4-tcp
//	external-v4-tcp-n2:  mark for masquerade; the same dnat
//	external-local-v4-tcp-n2-l1:
//	            fib saddr type local  mark; dnat … mod 2 map @endpoints-v4-tcp
//	            ip saddr @cluster-cidrs-v4  dnat … mod 2 map @endpoints-v4-tcp
//	            dnat … mod 1 map @local-endpoints-v4-tcp   ("drop" when l0)
//	endpoints-v4-tcp:    10.96.0.100 . 80 . 0 : 10.244.1.10 . 8080
//	                     10.96.0.100 . 80 . 1 : 10.244.2.10 . 8080
//	filter-prerouting / filter-output (ct state new) → reject-services:
//	            LB IP . proto . port @firewall-ips-v4, with source not in
//	            @firewall-allow-v4 (LB IP . proto . port . range): drop
//	            ip daddr . meta l4proto . th dport @no-endpoint-services-v4 reject
//	nat-postrouting → masquerading:
//	            ct status dnat ip saddr . ip daddr @hairpin-v4 masquerade
//	            packets marked by the NodePort and external chains: masquerade
//
// The endpoint-choosing chains are shared: one per kind (cluster,
// external, external-local, nodeport, nodeport-local), family, protocol
// and number of endpoints (cluster-v4-tcp-n2 serves every TCP service with
// two endpoints; the Local kinds also by the number of local ones), and
// the endpoint is looked up in a shared named map keyed by the packet's
// own destination concatenated with the random slot. An external address
// is a key of its own in the endpoint maps, so it needs nothing else. There is
// no chain and no anonymous map per service. That is the point of the
// design: kube-proxy gives every service chain its own anonymous DNAT map,
// and binding each map walks the pending transaction, so its first sync of
// 10,000 services takes over a minute; and a verdict map referenced from
// many chains makes every new element revalidate all of them (measured on
// this kernel: 10,000 per-service chains sharing one map took 52 s to load,
// the shared-group layout 1.5 s). Here a change of one service's endpoints
// is a handful of element deletes and adds (only the slots that changed:
// endpoints keep their slot) plus, when the endpoint count changes, one
// verdict element that points at another group chain. nft's own cache
// listing per transaction covers a few dozen chains and sets, never the
// services. No sync lists anything: the Proxier remembers what it wrote.
//
// The endpoint maps are per protocol (endpoints-v4-tcp, -udp, -sctp)
// because of nft 1.0.x: a map whose data is typed `ip daddr . th dport`
// cannot be used by a rule added in a later transaction ("conflicting
// protocols specified: ip vs. th"), while `ip daddr . tcp dport` can, and
// in a TCP-only map its implied `meta l4proto tcp` is harmless.
//
// Ports with ClientIP affinity are the exception: affinity must remember
// which endpoint a client got, which a map lookup cannot report, so such a
// port gets a chain of its own with one dynamic set of recent clients per
// endpoint (kube-proxy's scheme) and a cascade of `numgen random mod k`
// picks (k = n, n-1, …, 2: equal probability). They are few in practice.
//
// # Why knftables for structure, netlink for elements
//
// sigs.k8s.io/knftables is what kube-proxy's nftables mode uses and is kept
// by the Kubernetes SIG Network maintainers. It writes transactions as nft
// syntax through `nft -f -`, so the rules, the golden test dumps (its Fake)
// and `nft list table inet clusterdns-nodeproxy` on a node all read the
// same, and nft does the expression encoding: numgen in concatenated map
// keys, typeof maps, fib, dynamic sets with timeouts, reject, NAT to
// concatenated map data. Those are in the chains and set declarations,
// which are few (a few dozen group chains, whatever the cluster size) and
// change rarely, so they stay nft text.
//
// What is many and hot is elements: 210,000 at 10,000 services × 10
// endpoints, and every endpoint change is elements only. Written as nft
// text they were 20 MB and 4-5 s of `nft -f` for a full sync (knftables
// writes one command per element), and each change paid an nft process
// that rebuilds its cache of the table. So the elements of the shared sets
// and maps (elementLayouts: every one but the interval sets, whose few
// elements stay text) go through github.com/google/nftables as one netlink
// batch, which the kernel applies as one transaction. An element is only
// bytes: each field of a concatenation padded to 4 bytes (addresses in
// network order, inet_proto one byte, inet_service two bytes big-endian,
// the `numgen random mod N` slot a 32-bit integer in host order, as the
// typeof declaration makes it), verdicts as goto/drop, comments in the
// element's userdata as nft writes them. TestNetlinkElementsEncodeAsNft
// proves it: it writes the golden cluster (full and partial syncs) and one
// element of every layout once as nft text and once over netlink into two
// network namespaces of the real kernel, and compares `nft list table`.
// A batch goes out in one sendmsg with the socket buffers forced to its
// size (SO_SNDBUFFORCE, SO_RCVBUFFORCE), each message's element list under
// the 16-bit attribute length. The golden tests keep knftables.Fake and see
// every element (no ElementWriter: one transaction, as before; or
// TransactionElements, a knftables transaction per batch, for the steps).
// --netlink-elements=false runs a node the old way.
//
// Group chains are created on first use and deleted only by full syncs,
// so that an endpoint count change, too, is one batch and no nft process.
//
// # Measured (2 cores, nft 1.0.6, kernel 6.18; real kernel, fresh netns)
//
// The machine is shared (load average 10-15 throughout), so wall times
// vary two- to threefold from run to run; the benchmarks also report the
// CPU time of the sync (the process and its nft children), which load
// does not inflate. Old = the code before netlink elements (one nft
// transaction per sync, the same as --netlink-elements=false), its test
// binary run alternately with the new one in the same minutes:
//
//	go test -run '^$' -bench FullSync -benchtime 3x ./nodeproxy/
//	                        old (nft text)     new (netlink elements)
//	  1,000 svc × 10 ep:    0.61-1.86 s        0.12-0.81 s  (CPU 0.11-0.19 s)
//	 10,000 svc × 10 ep:    5.6-20.9 s         1.97-5.2 s   (CPU 1.3-1.7 s;
//	                                           1.3 s and 2.25 s once the
//	                                           elements were streamed)
//	                        (210,073 ops)      (210,120 ops: about a hundred
//	                                           nft, the rest one batch)
//	go test -run '^$' -bench EndpointChange -benchtime 40x ./nodeproxy/
//	  (one service's endpoint count goes 10 → 9 → 10: a verdict element
//	  repointed, one endpoint element deleted or added)
//	  1,000 services:       17-32 ms           0.9-3.6 ms   (CPU 1.0-1.7 ms)
//	 10,000 services:       36-110 ms          3.3-8.8 ms   (CPU 3.0-3.4 ms)
//	  (means of 40; the first change of a run creates the 9-endpoint group
//	  chain with nft, the others are one netlink batch each)
//
// The same benchmarks run both ways (elements=netlink, elements=nft) in
// one binary. An endpoint change is now one netlink batch on a kept-open
// socket: no nft process, no nft cache of the table. Two things had made
// it slow besides nft: a group chain created and deleted at each count
// flip (now kept until the next full sync), and closing the netlink
// socket after each batch, which waits for the kernel to free the deleted
// elements (an RCU grace period, 5-50 ms here: seen in the thread's
// kernel stack, __flush_work from nft_rcv_nl_event in netlink_release).
// What remains grows with the cluster only where the kernel revalidates
// the chains that a changed verdict element can reach (nft_table_validate).
//
// # Memory
//
// The Proxier keeps, per service port, its addresses and endpoint lists
// in slot order (one list when the ClusterIP and external ones are the
// same), not the rule objects: those are regenerated from the previous
// port when a diff needs them. A full sync's elements are never nft text
// (NetlinkElements encodes them and lets each go as it is encoded). After
// a full sync the Proxier takes a fresh knftables interface (knftables
// keeps the buffer of its largest transaction) and returns the freed
// memory to the kernel; after the
// first one also the executable's pages that only starting up touched
// (internal/pages, as clusterdns does), and the garbage of partial syncs
// once they settle. The command runs the GC at 100 until the first full
// sync and during full syncs (their garbage is large and short-lived) and
// at 10 (--gc-percent) otherwise, the heap being mostly long-lived state.
//
// Side by side over a real API server, 10 endpoints per service, 50
// endpoint changes each, on a quiet 2-core machine (load average 1-5;
// kube-proxy v1.37.2 in nftables mode, same run):
//
//	BENCH_ONLY=compare BENCH_SERVICES=1000,10000 BENCH_CHANGES=50 bash bench/nodeproxy.sh
//	                    first sync (own log)   change from the ack p50/p99 (own mean)   RSS first/end/peak   heap
//	  kube-proxy  1k    1.26 s (0.52 s)        334 ms / 931 ms (65.7 ms)                 84 /  92 /  92 MB    30 MB
//	  nodeproxy   1k    0.51 s (0.21 s)        2.5 ms / 14.2 ms (0.62 ms)                16 /  22 /  38 MB     7 MB
//	  kube-proxy  10k   47.1 s (43.9 s)        542 ms / 1.55 s (471 ms)                 276 / 296 / 296 MB   156 MB
//	  nodeproxy   10k   2.05 s (0.98 s)        2.1 ms / 16.6 ms (0.46 ms)                50 /  56 / 147 MB    41 MB
//
// (first sync: process start → the probe ClusterIP connects, informer
// lists included; own log: the full sync alone. change: from the
// EndpointSlice update call's return to a client's TCP connect (tried
// every millisecond) reaching the new endpoint, through the API server's
// watch and the informers; own mean: the proxy's partial sync. The update
// call itself took p50 4-7 ms more. RSS end: after the 50 changes. p90 of
// the change at 10k: 2.7 ms; its p99 is the largest of 50.) In the run
// before (20 changes): 10k first sync 2.62 s (1.24 s), RSS 48 / 55 MB.
// Before the netlink elements, on a loaded machine: 5.7 s, change p50
// 16.5 ms / p99 111 ms from the update call, RSS 57 / 65 / 244 MB.
//
// In process (a 10k cluster built in the test, then one full sync, VmHWM
// before and after) the sync raises the peak from 54 MB to 220 MB with
// nft text, to 154 MB with the netlink batch built whole, and to 104 MB
// with the elements streamed. A lower GC target during the full sync
// would cut the sync's share further (GOGC 50: 133 MB, 25: 113 MB in
// process, measured before streaming), not tried in the command.
//
// In-process, without an API server (CLUSTERDNS_BENCH=1 go test -run
// Footprint10k -v ./nodeproxy/): the registry's model and snapshot of 10k ×
// 10 are 20.9 MB of live heap (24.5 MB before the store skipped the DNS
// labels the proxy never reads, registry.Options.NoDNSLabels), the
// Proxier's state 8.0 MB (the hairpin counts about 1.6 MB of it, the
// endpoint lists 3.5 MB, the ports 2.5 MB); the rest of the heap is the
// informers' caches, client-go and the metrics. RSS ≤ 50 MB holds after
// the first sync and not through changes (56 MB after 50): the GC's
// headroom and the changes' garbage until it is returned once they
// settle.

// # Where the first sync's time goes
//
// Before: the full transaction of 10k × 10 was 210,073 operations and
// 20.0 MB of nft text, one `add element` command per element; nft -f took
// 4.2-4.9 s of a 5.4-7.0 s sync at load 10. Now: an nft transaction of the
// skeleton (about a hundred operations: table, base and group chains, set
// declarations), one netlink batch of the rest (the 36 shared sets and
// maps flushed, then filled; about 15 MB of messages in one sendmsg),
// and a netlink listing of the table's chains and sets to delete leftovers
// (`nft --json list table` would print every element: 14 s at 10k). The
// sync costs about 1.5 s of CPU at 10k (process and nft): in the Go
// profile, building the ports and elements about 0.35 s and encoding them
// about 0.2 s (google/nftables marshals each element into several
// attribute buffers: 135 MB allocated); the rest, the kernel's insertion
// and commit, nft and the GC, was not split further.
// On this machine at load 11-13, the command's own log gave 1.79 s for
// the 10k first sync and 0.35 s for 1k (bench/nodeproxy.sh below).
//
// # Not done
//
// Node eligibility for /healthz (deletion, the ToBeDeletedByClusterAutoscaler
// taint) is polled once a minute, not watched. SCTP carries traffic
// only where the kernel has SCTP (the end-to-end test skips otherwise; the
// rules are checked against the kernel either way). ClientIP affinity for
// a port is written with per-port chains (see above), the one part whose
// cost grows with its endpoints.
//
// A full sync still makes each element as a knftables.Element (and
// parses its words back) before encoding it, and google/nftables
// allocates several buffers per element: about 250 MB allocated per 10k
// full sync. The netlink batch of a full sync cannot be cancelled once
// sent (ctx is checked before). After a failed full sync the next one recreates the
// table in one nft transaction, the slow path (5-20 s at 10k here).
package nodeproxy
