package nodeproxy

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/knftables"
)

// Names of the shared objects. Per-family objects end in -v4/-v6, the
// endpoint maps also carry the protocol (see doc.go for why).
const (
	chainNATPrerouting    = "nat-prerouting"
	chainNATOutput        = "nat-output"
	chainNATPostrouting   = "nat-postrouting"
	chainFilterPrerouting = "filter-prerouting"
	chainFilterOutput     = "filter-output"
	chainServices         = "services"
	chainRejectServices   = "reject-services"
	chainMasquerading     = "masquerading"
)

func serviceIPsMap(f family) string         { return "service-ips-" + f.suffix() }
func serviceNodePortsMap(f family) string   { return "service-nodeports-" + f.suffix() }
func noEndpointServicesSet(f family) string { return "no-endpoint-services-" + f.suffix() }
func noEndpointNodePortsSet(f family) string {
	return "no-endpoint-nodeports-" + f.suffix()
}
func hairpinSet(f family) string              { return "hairpin-" + f.suffix() }
func endpointsMap(f family, pr string) string { return "endpoints-" + f.suffix() + "-" + pr }
func nodePortEndpointsMap(f family, pr string) string {
	return "nodeport-endpoints-" + f.suffix() + "-" + pr
}

// groupKind tells which shared endpoint-choosing chain a port jumps to.
type groupKind uint8

const (
	groupCluster       groupKind = iota // ClusterIP traffic
	groupNodePort                       // NodePort traffic, masqueraded
	groupNodePortLocal                  // NodePort traffic, externalTrafficPolicy Local
)

// group is one shared chain that picks among n endpoints: every port with
// the same family, protocol and number of endpoints jumps to it, and it
// looks the endpoint up in the shared map by the packet's own destination.
// Having no chain per service keeps both the kernel's work per transaction
// and nft's cache listing independent of the number of services.
type group struct {
	Kind   groupKind
	Family family
	Proto  string
	N      int
}

func (g group) name() string {
	prefix := [...]string{"cluster", "nodeport", "nodeport-local"}[g.Kind]
	return fmt.Sprintf("%s-%s-%s-n%d", prefix, g.Family.suffix(), g.Proto, g.N)
}

func (g group) rules(masqMark string) []string {
	ip := g.Family.nft()
	switch g.Kind {
	case groupCluster:
		return []string{fmt.Sprintf("dnat %s to %s daddr . %s dport . numgen random mod %d map @%s",
			ip, ip, g.Proto, g.N, endpointsMap(g.Family, g.Proto))}
	case groupNodePort:
		return []string{
			"meta mark set meta mark | " + masqMark,
			fmt.Sprintf("dnat %s to %s dport . numgen random mod %d map @%s",
				ip, g.Proto, g.N, nodePortEndpointsMap(g.Family, g.Proto)),
		}
	default:
		return []string{fmt.Sprintf("dnat %s to %s dport . numgen random mod %d map @%s",
			ip, g.Proto, g.N, nodePortEndpointsMap(g.Family, g.Proto))}
	}
}

// elemRef identifies an element: its set or map and its key.
type elemRef struct {
	Set string
	Key string // key words joined with " . "
}

// portObjects is everything written for one servicePort besides the shared
// objects: elements of the shared maps and sets, and for ClientIP affinity
// its own chains and per-endpoint sets.
type portObjects struct {
	Elems  map[elemRef]*knftables.Element
	Chains map[string][]string // chain name → rules
	Sets   map[string]*knftables.Set
	Groups []group
}

func (o *portObjects) addElem(e *knftables.Element) {
	name := e.Set
	if name == "" {
		name = e.Map
	}
	o.Elems[elemRef{Set: name, Key: strings.Join(e.Key, " . ")}] = e
}

// objects generates the per-port objects of p. Its endpoint lists must
// already be in slot order.
func (p *servicePort) objects(masqMark string) *portObjects {
	o := &portObjects{Elems: map[elemRef]*knftables.Element{}}
	id, f := p.ID, p.ID.Family
	vip, port := p.VIP.String(), strconv.Itoa(int(p.ID.Port))
	comment := knftables.PtrTo(id.String())

	// ClusterIP.
	vipKey := []string{vip, id.Proto, port}
	if len(p.Endpoints) == 0 {
		o.addElem(&knftables.Element{Set: noEndpointServicesSet(f), Key: vipKey, Comment: comment})
	} else {
		var target string
		if p.Affinity > 0 {
			target = affinityChain(id, false)
			o.affinity(p, target, p.Endpoints, "")
		} else {
			g := group{Kind: groupCluster, Family: f, Proto: id.Proto, N: len(p.Endpoints)}
			o.Groups = append(o.Groups, g)
			target = g.name()
			for i, ep := range p.Endpoints {
				o.addElem(&knftables.Element{
					Map:   endpointsMap(f, id.Proto),
					Key:   []string{vip, port, strconv.Itoa(i)},
					Value: []string{ep.Addr().String(), strconv.Itoa(int(ep.Port()))},
				})
			}
		}
		o.addElem(&knftables.Element{Map: serviceIPsMap(f), Key: vipKey, Value: []string{"goto " + target}, Comment: comment})
	}

	// NodePort.
	if p.NodePort > 0 {
		np := strconv.Itoa(int(p.NodePort))
		npKey := []string{id.Proto, np}
		eps := p.NodePortEndpoints
		switch {
		case len(eps) == 0:
			o.addElem(&knftables.Element{Set: noEndpointNodePortsSet(f), Key: npKey, Comment: comment})
		case p.Affinity > 0:
			target := affinityChain(id, true)
			mark := ""
			if !p.NodePortLocal {
				mark = masqMark
			}
			o.affinity(p, target, eps, mark)
			o.addElem(&knftables.Element{Map: serviceNodePortsMap(f), Key: npKey, Value: []string{"goto " + target}, Comment: comment})
		default:
			kind := groupNodePort
			if p.NodePortLocal {
				kind = groupNodePortLocal
			}
			g := group{Kind: kind, Family: f, Proto: id.Proto, N: len(eps)}
			o.Groups = append(o.Groups, g)
			for i, ep := range eps {
				o.addElem(&knftables.Element{
					Map:   nodePortEndpointsMap(f, id.Proto),
					Key:   []string{np, strconv.Itoa(i)},
					Value: []string{ep.Addr().String(), strconv.Itoa(int(ep.Port()))},
				})
			}
			o.addElem(&knftables.Element{Map: serviceNodePortsMap(f), Key: npKey, Value: []string{"goto " + g.name()}, Comment: comment})
		}
	}
	return o
}

// affinity writes a chain of its own for a ClientIP-affinity port: one set
// of recent clients per endpoint (kube-proxy's scheme); a client found in a
// set goes back to that endpoint, a new one picks with equal probability
// (numgen random mod k over the k endpoints still in play) and is recorded.
// Affinity needs to know which endpoint was picked, which a shared map
// lookup cannot tell, so these ports (few, in practice) cost a chain each.
func (o *portObjects) affinity(p *servicePort, chain string, eps []netip.AddrPort, mark string) {
	if o.Chains == nil {
		o.Chains, o.Sets = map[string][]string{}, map[string]*knftables.Set{}
	}
	f, ip := p.ID.Family, p.ID.Family.nft()
	var rules []string
	if mark != "" {
		rules = append(rules, "meta mark set meta mark | "+mark)
	}
	sets := make([]string, len(eps))
	for i, ep := range eps {
		sets[i] = affinitySet(p.ID, ep)
		if _, ok := o.Sets[sets[i]]; !ok {
			d := time.Duration(p.Affinity) * time.Second
			o.Sets[sets[i]] = &knftables.Set{
				Name:    sets[i],
				Type:    f.addrType(),
				Flags:   []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
				Timeout: &d,
				Comment: knftables.PtrTo(p.ID.String() + " " + ep.String()),
			}
		}
		rules = append(rules, fmt.Sprintf("%s saddr @%s update @%s { %s saddr } meta l4proto %s dnat %s to %s",
			ip, sets[i], sets[i], ip, p.ID.Proto, ip, ep))
	}
	for i, ep := range eps {
		pick := ""
		if k := len(eps) - i; k > 1 {
			pick = fmt.Sprintf("numgen random mod %d 0 ", k)
		}
		rules = append(rules, fmt.Sprintf("%supdate @%s { %s saddr } meta l4proto %s dnat %s to %s",
			pick, sets[i], ip, p.ID.Proto, ip, ep))
	}
	o.Chains[chain] = rules
}

func affinityChain(id portID, nodePort bool) string {
	if nodePort {
		return "affinity-nodeport-" + id.String()
	}
	return "affinity-" + id.String()
}

// affinitySet names the client set of one endpoint of a port; hashed, as
// set names cannot hold an IPv6 address.
func affinitySet(id portID, ep netip.AddrPort) string {
	sum := sha256.Sum256([]byte(id.String() + "|" + ep.String()))
	return "affinity-" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:])[:16])
}

// baseObjects adds the table and every shared object to tx: the hooks, the
// dispatch chains and all shared maps and sets, empty.
func baseObjects(tx *knftables.Transaction, masqMark string) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("clusterdns node proxy: service virtual IPs")})
	base := func(name string, t knftables.BaseChainType, h knftables.BaseChainHook, prio string) {
		tx.Add(&knftables.Chain{Name: name, Type: &t, Hook: &h, Priority: knftables.PtrTo(knftables.BaseChainPriority(prio))})
	}
	base(chainFilterPrerouting, knftables.FilterType, knftables.PreroutingHook, "-110")
	base(chainFilterOutput, knftables.FilterType, knftables.OutputHook, "-110")
	base(chainNATPrerouting, knftables.NATType, knftables.PreroutingHook, "dstnat")
	base(chainNATOutput, knftables.NATType, knftables.OutputHook, "-100")
	base(chainNATPostrouting, knftables.NATType, knftables.PostroutingHook, "srcnat")
	for _, c := range []string{chainServices, chainRejectServices, chainMasquerading} {
		tx.Add(&knftables.Chain{Name: c})
	}
	rule := func(chain string, rules ...string) {
		for _, r := range rules {
			tx.Add(&knftables.Rule{Chain: chain, Rule: r})
		}
	}
	rule(chainFilterPrerouting, "ct state new jump "+chainRejectServices)
	rule(chainFilterOutput, "ct state new jump "+chainRejectServices)
	rule(chainNATPrerouting, "jump "+chainServices)
	rule(chainNATOutput, "jump "+chainServices)
	rule(chainNATPostrouting, "jump "+chainMasquerading)

	for _, f := range []family{ipv4, ipv6} {
		ip, at := f.nft(), f.addrType()
		notLoopback := "ip daddr != 127.0.0.0/8"
		if f == ipv6 {
			notLoopback = "ip6 daddr != ::1"
		}
		tx.Add(&knftables.Map{Name: serviceIPsMap(f), Type: at + " . inet_proto . inet_service : verdict",
			Comment: knftables.PtrTo("ClusterIP . protocol . port: the chain that picks an endpoint")})
		tx.Add(&knftables.Map{Name: serviceNodePortsMap(f), Type: "inet_proto . inet_service : verdict",
			Comment: knftables.PtrTo("protocol . node port: the chain that picks an endpoint")})
		tx.Add(&knftables.Set{Name: noEndpointServicesSet(f), Type: at + " . inet_proto . inet_service",
			Comment: knftables.PtrTo("ClusterIP ports without endpoints: rejected")})
		tx.Add(&knftables.Set{Name: noEndpointNodePortsSet(f), Type: "inet_proto . inet_service",
			Comment: knftables.PtrTo("node ports without endpoints: rejected")})
		tx.Add(&knftables.Set{Name: hairpinSet(f), Type: at + " . " + at,
			Comment: knftables.PtrTo("endpoint . endpoint: a pod reaching itself through a service is masqueraded")})
		for _, pr := range protocols {
			tx.Add(&knftables.Map{Name: endpointsMap(f, pr),
				TypeOf:  fmt.Sprintf("%s daddr . %s dport . numgen random mod 1 : %s daddr . %s dport", ip, pr, ip, pr),
				Comment: knftables.PtrTo("ClusterIP . port . slot: endpoint")})
			tx.Add(&knftables.Map{Name: nodePortEndpointsMap(f, pr),
				TypeOf:  fmt.Sprintf("%s dport . numgen random mod 1 : %s daddr . %s dport", pr, ip, pr),
				Comment: knftables.PtrTo("node port . slot: endpoint")})
		}
		rule(chainServices,
			fmt.Sprintf("%s daddr . meta l4proto . th dport vmap @%s", ip, serviceIPsMap(f)),
			fmt.Sprintf("fib daddr type local %s meta l4proto . th dport vmap @%s", notLoopback, serviceNodePortsMap(f)))
		rule(chainRejectServices,
			fmt.Sprintf("%s daddr . meta l4proto . th dport @%s reject", ip, noEndpointServicesSet(f)),
			fmt.Sprintf("fib daddr type local %s meta l4proto . th dport @%s reject", notLoopback, noEndpointNodePortsSet(f)))
		rule(chainMasquerading, fmt.Sprintf("ct status dnat %s saddr . %s daddr @%s masquerade", ip, ip, hairpinSet(f)))
	}
	rule(chainMasquerading,
		fmt.Sprintf("meta mark & %s == 0 return", masqMark),
		fmt.Sprintf("meta mark set meta mark ^ %s", masqMark),
		"masquerade fully-random")
}

// sortedKeys returns the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
