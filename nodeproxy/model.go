package nodeproxy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

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

func comparePortIDs(a, b portID) int {
	return cmp.Or(
		strings.Compare(a.Service.Namespace, b.Service.Namespace),
		strings.Compare(a.Service.Name, b.Service.Name),
		cmp.Compare(a.Family, b.Family),
		strings.Compare(a.Proto, b.Proto),
		cmp.Compare(a.Port, b.Port),
	)
}

// servicePort is what the rules of one portID are generated from: the
// desired state computed from a snapshot, or (with endpoints in slot order)
// the state last written to the kernel.
type servicePort struct {
	ID       portID
	VIP      netip.Addr
	NodePort int32 // 0 when none
	// Endpoints receive ClusterIP traffic: the ready ones, or when none is
	// ready the serving and terminating ones. Their index is their slot in
	// the endpoint map (numgen random mod len(Endpoints)).
	Endpoints []netip.AddrPort
	// NodePortEndpoints receive NodePort traffic: Endpoints, or with
	// externalTrafficPolicy Local the ones on this node.
	NodePortEndpoints []netip.AddrPort
	// NodePortLocal is externalTrafficPolicy: Local (no masquerade).
	NodePortLocal bool
	// Affinity is the ClientIP affinity timeout in seconds, 0 for none.
	Affinity int32
}

// servicePorts computes the desired ports of a service from its entry.
// Headless and ExternalName services have none. nodeName selects the local
// endpoints for externalTrafficPolicy: Local (empty: every endpoint).
func servicePorts(e *registry.ServiceEntry, nodeName string) []*servicePort {
	if e == nil || e.Kind != registry.KindClusterIP {
		return nil
	}
	var out []*servicePort
	for _, vip := range e.ClusterIPs {
		fam := familyOf(vip)
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
				NodePortLocal: e.ExternalTrafficLocal && nodeName != "",
			}
			p.Endpoints = eligibleEndpoints(e, sp, fam, "")
			p.NodePortEndpoints = p.Endpoints
			if p.NodePortLocal {
				p.NodePortEndpoints = eligibleEndpoints(e, sp, fam, nodeName)
			}
			out = append(out, p)
		}
	}
	return out
}

// eligibleEndpoints picks the endpoints of family fam that serve sp: the
// ready ones, else the serving-and-terminating ones (kube-proxy's rule), on
// node onNode when that is set. Duplicates are dropped; the order is the
// snapshot's.
func eligibleEndpoints(e *registry.ServiceEntry, sp registry.ServicePort, fam family, onNode string) []netip.AddrPort {
	var ready, terminating []netip.AddrPort
	for i := range e.Endpoints {
		ep := &e.Endpoints[i]
		if familyOf(ep.Address) != fam || (onNode != "" && ep.NodeName() != onNode) {
			continue
		}
		port := targetPort(ep.Ports(), sp)
		if port == 0 {
			continue
		}
		ap := netip.AddrPortFrom(ep.Address, uint16(port))
		switch {
		case ep.Ready:
			if !slices.Contains(ready, ap) {
				ready = append(ready, ap)
			}
		case ep.Serving && ep.Terminating:
			if !slices.Contains(terminating, ap) {
				terminating = append(terminating, ap)
			}
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return terminating
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
