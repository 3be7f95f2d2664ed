package nodeproxy

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/clusterdns/clusterdns/registry"
)

// family is an IP family of a service port: its virtual IP and its
// endpoints are all of that family.
type family uint8

const (
	ipv4 family = 4
	ipv6 family = 6
)

// nft is the nft keyword of the family's network header ("ip", "ip6").
func (f family) nft() string {
	if f == ipv6 {
		return "ip6"
	}
	return "ip"
}

// suffix names the family in object names ("v4", "v6").
func (f family) suffix() string {
	if f == ipv6 {
		return "v6"
	}
	return "v4"
}

// addrType is the nft type of an address of the family.
func (f family) addrType() string {
	if f == ipv6 {
		return "ipv6_addr"
	}
	return "ipv4_addr"
}

func familyOf(a netip.Addr) family {
	if a.Is4() {
		return ipv4
	}
	return ipv6
}

// proto returns the lower-case nft spelling of a protocol, or "" for one
// that the node proxy does not forward.
func proto(p registry.Protocol) string {
	switch p {
	case registry.TCP:
		return "tcp"
	case registry.UDP:
		return "udp"
	case registry.SCTP:
		return "sctp"
	}
	return ""
}

var protocols = []string{"tcp", "udp", "sctp"}

// portID names one forwarded port of one family of one service: the unit
// that the rules are written and diffed in.
type portID struct {
	Service registry.Key
	Proto   string // tcp, udp, sctp
	Port    int32  // the service port
	Family  family
}

// String is "ns/name/proto/port" with "/v6" appended for IPv6; it is used
// in chain names and comments and sorts the golden dumps.
func (id portID) String() string {
	s := fmt.Sprintf("%s/%s/%s/%d", id.Service.Namespace, id.Service.Name, id.Proto, id.Port)
	if id.Family == ipv6 {
		s += "/v6"
	}
	return s
}

// servicePort is what the rules of one portID are generated from: the
// desired state computed from a snapshot, or (with endpoints in slot order)
// the state last written to the kernel.
type servicePort struct {
	ID       portID
	VIP      netip.Addr
	NodePort int32 // 0 when none
	// Endpoints receive ClusterIP traffic: ClusterEndpoints, or with
	// internalTrafficPolicy Local, LocalEndpoints. Their index is their
	// slot in the endpoint map (numgen random mod len(Endpoints)).
	Endpoints []netip.AddrPort
	// ClusterEndpoints are every usable endpoint after topology: the ones
	// external traffic with policy Cluster goes to, and traffic from the
	// node or the cluster to a Local service's external addresses.
	ClusterEndpoints []netip.AddrPort
	// LocalEndpoints are this node's usable endpoints: external traffic
	// with policy Local goes only to them.
	LocalEndpoints []netip.AddrPort
	// External are the LoadBalancer ingress IPs and externalIPs of the
	// port's family; Firewalled are those LoadBalancer IPs that only
	// SourceRanges may reach.
	External     []netip.Addr
	Firewalled   []netip.Addr
	SourceRanges []netip.Prefix
	// HasEndpoints: some usable endpoint exists anywhere in the cluster;
	// without one every address of the port rejects.
	HasEndpoints bool
	// ExternalLocal is externalTrafficPolicy: Local (no masquerade, only
	// LocalEndpoints); InternalLocal is internalTrafficPolicy: Local.
	ExternalLocal, InternalLocal bool
	// Affinity is the ClientIP affinity timeout in seconds, 0 for none.
	Affinity int32
}

// node is where the node proxy runs: its name selects the local endpoints
// of the Local traffic policies (empty: those services are treated as
// Cluster), its zone the topology hints.
type node struct {
	Name, Zone string
}

// servicePorts computes the desired ports of a service from its entry, and
// describes the entries of the service that were skipped (addresses that
// do not parse, externalIPs of a family the service does not have).
// Headless and ExternalName services have none.
func servicePorts(e *registry.ServiceEntry, n node) (ports []*servicePort, skipped []string) {
	if e == nil || e.Kind != registry.KindClusterIP {
		return nil, nil
	}
	t := e.Traffic
	if t == nil {
		t = &registry.ServiceTraffic{}
	}
	skipped = t.Invalid
	hasFamily := func(f family) bool {
		return slices.ContainsFunc(e.ClusterIPs, func(a netip.Addr) bool { return familyOf(a) == f })
	}
	for _, a := range t.ExternalIPs {
		if !hasFamily(familyOf(a)) {
			skipped = append(skipped, fmt.Sprintf("externalIP %s: the service has no IPv%d ClusterIP", a, familyOf(a)))
		}
	}
	for _, a := range t.LoadBalancerIPs {
		if !hasFamily(familyOf(a)) {
			skipped = append(skipped, fmt.Sprintf("loadBalancer ingress %s: the service has no IPv%d ClusterIP", a, familyOf(a)))
		}
	}
	for _, vip := range e.ClusterIPs {
		fam := familyOf(vip)
		ofFamily := func(as []netip.Addr) []netip.Addr {
			var out []netip.Addr
			for _, a := range as {
				if familyOf(a) == fam && !slices.Contains(out, a) {
					out = append(out, a)
				}
			}
			return out
		}
		lbIPs := ofFamily(t.LoadBalancerIPs)
		external := ofFamily(append(slices.Clip(lbIPs), t.ExternalIPs...))
		var ranges []netip.Prefix
		for _, r := range t.SourceRanges {
			if familyOf(r.Addr()) == fam {
				ranges = append(ranges, r)
			}
		}
		for _, sp := range e.Ports {
			pr := proto(sp.Protocol)
			if pr == "" || sp.Port <= 0 {
				continue
			}
			p := &servicePort{
				ID:            portID{Service: e.Key, Proto: pr, Port: sp.Port, Family: fam},
				VIP:           vip,
				NodePort:      sp.NodePort,
				Affinity:      e.SessionAffinityTimeout,
				External:      external,
				ExternalLocal: e.ExternalTrafficLocal && n.Name != "",
				InternalLocal: t.InternalTrafficLocal && n.Name != "",
			}
			if len(ranges) > 0 {
				p.Firewalled, p.SourceRanges = lbIPs, ranges
			}
			p.ClusterEndpoints, p.LocalEndpoints, p.HasEndpoints = categorize(e, sp, fam, n)
			p.Endpoints = p.ClusterEndpoints
			if p.InternalLocal {
				p.Endpoints = p.LocalEndpoints
			}
			if !p.ExternalLocal && !p.InternalLocal {
				p.LocalEndpoints = nil
			}
			ports = append(ports, p)
		}
	}
	return ports, skipped
}

// candidate is an endpoint of one service port and family, as categorize
// sees it.
type candidate struct {
	ap                 netip.AddrPort
	ready, servingTerm bool
	local              bool
	hints              *registry.EndpointHints
}

// categorize picks the usable endpoints of family fam that serve sp, as
// kube-proxy does: every ready one (of the node's zone or the node itself
// when topology hints say so), else the serving-and-terminating ones; and
// this node's ready ones, else its serving-and-terminating ones. hasAny
// tells whether any usable endpoint exists at all. Duplicates are dropped;
// the order is the snapshot's.
func categorize(e *registry.ServiceEntry, sp registry.ServicePort, fam family, n node) (cluster, local []netip.AddrPort, hasAny bool) {
	return categorizeEach(len(e.Endpoints), func(i int) (*registry.Endpoint, []registry.EndpointPort) {
		return e.Endpoints[i].Endpoint, e.Endpoints[i].Ports()
	}, sp, fam, n)
}

// categorizeEach is categorize over count endpoints that at returns with
// their ports (a service's merged endpoints, or an import's of every
// cluster).
func categorizeEach(count int, at func(i int) (*registry.Endpoint, []registry.EndpointPort), sp registry.ServicePort, fam family, n node) (cluster, local []netip.AddrPort, hasAny bool) {
	var cands []candidate
	seen := map[netip.AddrPort]bool{}
	for i := range count {
		ep, epPorts := at(i)
		if familyOf(ep.Address) != fam {
			continue
		}
		port := targetPort(epPorts, sp)
		if port == 0 {
			continue
		}
		ap := netip.AddrPortFrom(ep.Address, uint16(port))
		if seen[ap] {
			continue
		}
		seen[ap] = true
		cands = append(cands, candidate{
			ap: ap, ready: ep.Ready, servingTerm: !ep.Ready && ep.Serving && ep.Terminating,
			local: n.Name != "" && ep.NodeName() == n.Name, hints: ep.Hints,
		})
	}
	mode := topologyMode(cands, n)
	// The lists are kept for as long as the service is unchanged: sized
	// exactly, not by append's doubling.
	pick := func(ok func(c *candidate) bool) []netip.AddrPort {
		n := 0
		for i := range cands {
			if ok(&cands[i]) {
				n++
			}
		}
		if n == 0 {
			return nil
		}
		out := make([]netip.AddrPort, 0, n)
		for i := range cands {
			if ok(&cands[i]) {
				out = append(out, cands[i].ap)
			}
		}
		return out
	}
	cluster = pick(func(c *candidate) bool { return c.ready && mode.allows(c, n) })
	if len(cluster) == 0 {
		cluster = pick(func(c *candidate) bool { return c.servingTerm })
	}
	local = pick(func(c *candidate) bool { return c.local && c.ready })
	if len(local) == 0 {
		local = pick(func(c *candidate) bool { return c.local && c.servingTerm })
	}
	hasAny = slices.ContainsFunc(cands, func(c candidate) bool { return c.ready || c.servingTerm })
	return cluster, local, hasAny
}

// topology is how the hints narrow the cluster endpoints.
type topology uint8

const (
	topologyNone     topology = iota // every endpoint
	topologySameZone                 // those hinted for this node's zone
	topologySameNode                 // those hinted for this node
)

// topologyMode decides from the ready endpoints' hints, as kube-proxy
// does: when every ready endpoint has a node hint and one names this node,
// same node; else when every ready endpoint has a zone hint and one names
// this node's zone, same zone; else none (the hints are ignored).
func topologyMode(cands []candidate, n node) topology {
	anyReady, allNode, forNode, allZone, forZone := false, true, false, true, false
	for i := range cands {
		c := &cands[i]
		if !c.ready {
			continue
		}
		anyReady = true
		if c.hints == nil || len(c.hints.ForNodes) == 0 {
			allNode = false
		} else if n.Name != "" && slices.Contains(c.hints.ForNodes, n.Name) {
			forNode = true
		}
		if c.hints == nil || len(c.hints.ForZones) == 0 {
			allZone = false
		} else if n.Zone != "" && slices.Contains(c.hints.ForZones, n.Zone) {
			forZone = true
		}
	}
	switch {
	case !anyReady:
		return topologyNone
	case allNode && forNode:
		return topologySameNode
	case allZone && forZone:
		return topologySameZone
	}
	return topologyNone
}

func (t topology) allows(c *candidate, n node) bool {
	switch t {
	case topologySameNode:
		return c.hints != nil && slices.Contains(c.hints.ForNodes, n.Name)
	case topologySameZone:
		return c.hints != nil && slices.Contains(c.hints.ForZones, n.Zone)
	}
	return true
}

// targetPort finds the endpoint port that serves a service port: same name
// and protocol, as the EndpointSlice controller writes them.
func targetPort(ports []registry.EndpointPort, sp registry.ServicePort) int32 {
	for _, p := range ports {
		if p.Name == sp.Name && p.Protocol == sp.Protocol && p.Port > 0 && p.Port < 65536 {
			return p.Port
		}
	}
	return 0
}

// assignSlots orders want so that endpoints already in prev keep their slot
// (index): the few slots that change are the only map elements rewritten.
// Holes left by removed endpoints are filled first by new endpoints, then by
// the endpoints of the last slots, so the result is dense.
func assignSlots(prev, want []netip.AddrPort) []netip.AddrPort {
	if len(prev) == 0 {
		return slices.Clone(want)
	}
	wanted := make(map[netip.AddrPort]bool, len(want))
	for _, w := range want {
		wanted[w] = true
	}
	slots := make([]netip.AddrPort, len(prev))
	kept := make(map[netip.AddrPort]bool, len(prev))
	for i, p := range prev {
		if wanted[p] && !kept[p] {
			slots[i] = p
			kept[p] = true
		}
	}
	var fresh []netip.AddrPort
	for _, w := range want {
		if !kept[w] {
			fresh = append(fresh, w)
			kept[w] = true
		}
	}
	// Fill holes with fresh endpoints, then append the rest.
	for i := range slots {
		if !slots[i].IsValid() && len(fresh) > 0 {
			slots[i], fresh = fresh[0], fresh[1:]
		}
	}
	slots = append(slots, fresh...)
	// Compact: move endpoints from the tail into the remaining holes.
	for i := 0; i < len(slots); i++ {
		if slots[i].IsValid() {
			continue
		}
		for len(slots) > i && !slots[len(slots)-1].IsValid() {
			slots = slots[:len(slots)-1]
		}
		if len(slots) > i {
			slots[i] = slots[len(slots)-1]
			slots = slots[:len(slots)-1]
		}
	}
	return slots
}
