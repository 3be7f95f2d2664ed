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
func localEndpointsMap(f family, pr string) string {
	return "local-endpoints-" + f.suffix() + "-" + pr
}
func nodePortEndpointsMap(f family, pr string) string {
	return "nodeport-endpoints-" + f.suffix() + "-" + pr
}
func nodePortLocalEndpointsMap(f family, pr string) string {
	return "nodeport-local-endpoints-" + f.suffix() + "-" + pr
}
func clusterCIDRsSet(f family) string  { return "cluster-cidrs-" + f.suffix() }
func nodePortAddrsSet(f family) string { return "nodeport-addresses-" + f.suffix() }
func firewallSet(f family) string      { return "firewall-ips-" + f.suffix() }
func firewallAllowSet(f family) string { return "firewall-allow-" + f.suffix() }

// groupKind tells which shared endpoint-choosing chain a port jumps to.
type groupKind uint8

const (
	groupCluster       groupKind = iota // ClusterIP traffic
	groupExternal                       // LoadBalancer IP / externalIP, policy Cluster: masqueraded
	groupExternalLocal                  // LoadBalancer IP / externalIP, policy Local
	groupNodePort                       // NodePort traffic, masqueraded
	groupNodePortLocal                  // NodePort traffic, externalTrafficPolicy Local
)

// group is one shared chain that picks among N endpoints (and, for the
// Local policy, among L local ones): every port with the same kind,
// family, protocol and counts jumps to it, and it looks the endpoint up in
// a shared map by the packet's own destination. Having no chain per
// service keeps both the kernel's work per transaction and nft's cache
// listing independent of the number of services.
type group struct {
	Kind   groupKind
	Family family
	Proto  string
	N      int
	L      int // local endpoints; Local kinds only
}

func (g group) name() string {
	prefix := [...]string{"cluster", "external", "external-local", "nodeport", "nodeport-local"}[g.Kind]
	if g.Kind == groupExternalLocal || g.Kind == groupNodePortLocal {
		return fmt.Sprintf("%s-%s-%s-n%d-l%d", prefix, g.Family.suffix(), g.Proto, g.N, g.L)
	}
	return fmt.Sprintf("%s-%s-%s-n%d", prefix, g.Family.suffix(), g.Proto, g.N)
}

func (g group) rules(masqMark string) []string {
	ip := g.Family.nft()
	mark := "meta mark set meta mark | " + masqMark
	byAddr := func(n int, m string) string {
		return fmt.Sprintf("dnat %s to %s daddr . %s dport . numgen random mod %d map @%s", ip, ip, g.Proto, n, m)
	}
	byPort := func(n int, m string) string {
		return fmt.Sprintf("dnat %s to %s dport . numgen random mod %d map @%s", ip, g.Proto, n, m)
	}
	// local is the Local policy: traffic from the node itself
	// (masqueraded) and from the cluster's pods may use every endpoint,
	// as kube-proxy lets it; everything else only this node's, and is
	// dropped when the node has none.
	local := func(all string) []string {
		r := []string{
			"fib saddr type local " + mark + " " + all,
			fmt.Sprintf("%s saddr @%s %s", ip, clusterCIDRsSet(g.Family), all),
		}
		if g.L == 0 {
			return append(r, "drop")
		}
		return r
	}
	switch g.Kind {
	case groupCluster:
		return []string{byAddr(g.N, endpointsMap(g.Family, g.Proto))}
	case groupExternal:
		return []string{mark, byAddr(g.N, endpointsMap(g.Family, g.Proto))}
	case groupExternalLocal:
		r := local(byAddr(g.N, endpointsMap(g.Family, g.Proto)))
		if g.L > 0 {
			r = append(r, byAddr(g.L, localEndpointsMap(g.Family, g.Proto)))
		}
		return r
	case groupNodePort:
		return []string{mark, byPort(g.N, nodePortEndpointsMap(g.Family, g.Proto))}
	default:
		r := local(byPort(g.N, nodePortEndpointsMap(g.Family, g.Proto)))
		if g.L > 0 {
			r = append(r, byPort(g.L, nodePortLocalEndpointsMap(g.Family, g.Proto)))
		}
		return r
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

// slots adds the endpoints of eps to map m, keyed by key followed by the
// slot (the index in eps).
func (o *portObjects) slots(m string, key []string, eps []netip.AddrPort) {
	for i, ep := range eps {
		o.addElem(&knftables.Element{
			Map:   m,
			Key:   append(slices.Clip(key), strconv.Itoa(i)),
			Value: []string{ep.Addr().String(), strconv.Itoa(int(ep.Port()))},
		})
	}
}

// objects generates the per-port objects of p. Its endpoint lists must
// already be in slot order.
func (p *servicePort) objects(masqMark string) *portObjects {
	o := &portObjects{Elems: map[elemRef]*knftables.Element{}}
	id, f := p.ID, p.ID.Family
	vip, port := p.VIP.String(), strconv.Itoa(int(p.ID.Port))
	comment := knftables.PtrTo(id.String())
	verdict := func(set string, key []string, target string) {
		o.addElem(&knftables.Element{Map: set, Key: key, Value: []string{target}, Comment: comment})
	}
	reject := func(set string, key []string) {
		o.addElem(&knftables.Element{Set: set, Key: key, Comment: comment})
	}

	// ClusterIP.
	vipKey := []string{vip, id.Proto, port}
	switch {
	case !p.HasEndpoints:
		reject(noEndpointServicesSet(f), vipKey)
	case len(p.Endpoints) == 0: // internalTrafficPolicy Local, none here
		verdict(serviceIPsMap(f), vipKey, "drop")
	case p.Affinity > 0:
		target := affinityChain(id, "")
		o.affinity(p, target, p.Endpoints, "")
		verdict(serviceIPsMap(f), vipKey, "goto "+target)
	default:
		g := group{Kind: groupCluster, Family: f, Proto: id.Proto, N: len(p.Endpoints)}
		o.Groups = append(o.Groups, g)
		o.slots(endpointsMap(f, id.Proto), []string{vip, port}, p.Endpoints)
		verdict(serviceIPsMap(f), vipKey, "goto "+g.name())
	}

	// LoadBalancer IPs and externalIPs.
	for _, a := range p.External {
		key := []string{a.String(), id.Proto, port}
		if !p.HasEndpoints {
			reject(noEndpointServicesSet(f), key)
			continue
		}
		if p.Affinity > 0 {
			target := affinityChain(id, "external")
			o.externalAffinity(p, target, masqMark)
			verdict(serviceIPsMap(f), key, "goto "+target)
			continue
		}
		g := group{Kind: groupExternal, Family: f, Proto: id.Proto, N: len(p.ClusterEndpoints)}
		if p.ExternalLocal {
			g.Kind, g.L = groupExternalLocal, len(p.LocalEndpoints)
			o.slots(localEndpointsMap(f, id.Proto), []string{a.String(), port}, p.LocalEndpoints)
		}
		o.Groups = append(o.Groups, g)
		o.slots(endpointsMap(f, id.Proto), []string{a.String(), port}, p.ClusterEndpoints)
		verdict(serviceIPsMap(f), key, "goto "+g.name())
	}
	for _, a := range p.Firewalled {
		o.addElem(&knftables.Element{Set: firewallSet(f), Key: []string{a.String(), id.Proto, port}, Comment: comment})
		for _, r := range p.SourceRanges {
			o.addElem(&knftables.Element{Set: firewallAllowSet(f), Key: []string{a.String(), id.Proto, port, r.String()}})
		}
	}

	// NodePort.
	if p.NodePort > 0 {
		np := strconv.Itoa(int(p.NodePort))
		npKey := []string{id.Proto, np}
		switch {
		case !p.HasEndpoints:
			reject(noEndpointNodePortsSet(f), npKey)
		case p.Affinity > 0:
			target := affinityChain(id, "nodeport")
			o.externalAffinity(p, target, masqMark)
			verdict(serviceNodePortsMap(f), npKey, "goto "+target)
		default:
			g := group{Kind: groupNodePort, Family: f, Proto: id.Proto, N: len(p.ClusterEndpoints)}
			if p.ExternalLocal {
				g.Kind, g.L = groupNodePortLocal, len(p.LocalEndpoints)
				o.slots(nodePortLocalEndpointsMap(f, id.Proto), []string{np}, p.LocalEndpoints)
			}
			o.Groups = append(o.Groups, g)
			o.slots(nodePortEndpointsMap(f, id.Proto), []string{np}, p.ClusterEndpoints)
			verdict(serviceNodePortsMap(f), npKey, "goto "+g.name())
		}
	}
	return o
}

// externalAffinity writes the chain that external traffic (NodePort,
// LoadBalancer IP, externalIP) of a ClientIP-affinity port goes to. With
// policy Cluster it is masqueraded and picks among ClusterEndpoints; with
// Local, traffic from the node and the cluster goes on to a chain over
// ClusterEndpoints and the rest picks among LocalEndpoints (dropped when
// there are none).
func (o *portObjects) externalAffinity(p *servicePort, chain, masqMark string) {
	if _, done := o.Chains[chain]; done {
		return
	}
	if !p.ExternalLocal {
		o.affinity(p, chain, p.ClusterEndpoints, masqMark)
		return
	}
	all := affinityChain(p.ID, "all")
	if _, done := o.Chains[all]; !done {
		o.affinity(p, all, p.ClusterEndpoints, "")
	}
	ip := p.ID.Family.nft()
	head := []string{
		"fib saddr type local meta mark set meta mark | " + masqMark + " goto " + all,
		fmt.Sprintf("%s saddr @%s goto %s", ip, clusterCIDRsSet(p.ID.Family), all),
	}
	if len(p.LocalEndpoints) == 0 {
		o.Chains[chain] = append(head, "drop")
		return
	}
	o.affinity(p, chain, p.LocalEndpoints, "")
	o.Chains[chain] = append(head, o.Chains[chain]...)
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

// affinityChain names the affinity chain of one path of a port: "" for
// ClusterIP traffic, "external", "nodeport" or "all" (the every-endpoint
// chain that Local-policy traffic from inside the cluster goes to).
func affinityChain(id portID, path string) string {
	if path == "" {
		return "affinity-" + id.String()
	}
	return "affinity-" + path + "-" + id.String()
}

// affinitySet names the client set of one endpoint of a port; hashed, as
// set names cannot hold an IPv6 address.
func affinitySet(id portID, ep netip.AddrPort) string {
	sum := sha256.Sum256([]byte(id.String() + "|" + ep.String()))
	return "affinity-" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:])[:16])
}

// tableConfig is what the shared objects depend on besides the services.
type tableConfig struct {
	masqMark string
	// clusterCIDRs are the pods' addresses: their traffic to a Local
	// service's external addresses may use every endpoint.
	clusterCIDRs []netip.Prefix
	// nodePortAddrs restrict NodePorts to these node addresses; nil
	// means every local address but loopback.
	nodePortAddrs []netip.Prefix
}

// baseObjects adds the table and every shared object to tx: the hooks, the
// dispatch chains and all shared maps and sets, empty but for the
// configured address sets. With refresh the table may already hold them
// (a full sync over the table in place): the chains and the interval sets
// (whose elements are written as nft text) are flushed before they are
// filled. Every name it adds is recorded in keep when that is not nil.
func baseObjects(tx *knftables.Transaction, c *tableConfig, refresh bool, keep map[string]bool) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("clusterdns node proxy: service virtual IPs")})
	note := func(name string) {
		if keep != nil {
			keep[name] = true
		}
	}
	chain := func(ch *knftables.Chain) {
		note(ch.Name)
		tx.Add(ch)
		if refresh {
			tx.Flush(&knftables.Chain{Name: ch.Name})
		}
	}
	set := func(s *knftables.Set) {
		note(s.Name)
		tx.Add(s)
		if refresh && slices.Contains(s.Flags, knftables.IntervalFlag) {
			tx.Flush(&knftables.Set{Name: s.Name})
		}
	}
	addMap := func(m *knftables.Map) {
		note(m.Name)
		tx.Add(m)
	}
	base := func(name string, t knftables.BaseChainType, h knftables.BaseChainHook, prio string) {
		chain(&knftables.Chain{Name: name, Type: &t, Hook: &h, Priority: knftables.PtrTo(knftables.BaseChainPriority(prio))})
	}
	base(chainFilterPrerouting, knftables.FilterType, knftables.PreroutingHook, "-110")
	base(chainFilterOutput, knftables.FilterType, knftables.OutputHook, "-110")
	base(chainNATPrerouting, knftables.NATType, knftables.PreroutingHook, "dstnat")
	base(chainNATOutput, knftables.NATType, knftables.OutputHook, "-100")
	base(chainNATPostrouting, knftables.NATType, knftables.PostroutingHook, "srcnat")
	for _, ch := range []string{chainServices, chainRejectServices, chainMasquerading} {
		chain(&knftables.Chain{Name: ch})
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
		nodePorts := "fib daddr type local ip daddr != 127.0.0.0/8"
		if f == ipv6 {
			nodePorts = "fib daddr type local ip6 daddr != ::1"
		}
		addrSet := func(name, comment string, prefixes []netip.Prefix) {
			set(&knftables.Set{Name: name, Type: at, Flags: []knftables.SetFlag{knftables.IntervalFlag},
				Comment: knftables.PtrTo(comment)})
			for _, p := range prefixes {
				if familyOf(p.Addr()) == f {
					tx.Add(&knftables.Element{Set: name, Key: []string{p.String()}})
				}
			}
		}
		addrSet(clusterCIDRsSet(f), "pod addresses (--cluster-cidr)", c.clusterCIDRs)
		if c.nodePortAddrs != nil {
			addrSet(nodePortAddrsSet(f), "node addresses that NodePorts answer on (--nodeport-addresses)", c.nodePortAddrs)
			nodePorts = fmt.Sprintf("%s daddr @%s", ip, nodePortAddrsSet(f))
		}
		addMap(&knftables.Map{Name: serviceIPsMap(f), Type: at + " . inet_proto . inet_service : verdict",
			Comment: knftables.PtrTo("ClusterIP, LoadBalancer IP or externalIP . protocol . port: the chain that picks an endpoint")})
		addMap(&knftables.Map{Name: serviceNodePortsMap(f), Type: "inet_proto . inet_service : verdict",
			Comment: knftables.PtrTo("protocol . node port: the chain that picks an endpoint")})
		set(&knftables.Set{Name: noEndpointServicesSet(f), Type: at + " . inet_proto . inet_service",
			Comment: knftables.PtrTo("service addresses without endpoints: rejected")})
		set(&knftables.Set{Name: noEndpointNodePortsSet(f), Type: "inet_proto . inet_service",
			Comment: knftables.PtrTo("node ports without endpoints: rejected")})
		set(&knftables.Set{Name: firewallSet(f), Type: at + " . inet_proto . inet_service",
			Comment: knftables.PtrTo("LoadBalancer IP . protocol . port with loadBalancerSourceRanges")})
		set(&knftables.Set{Name: firewallAllowSet(f), Type: at + " . inet_proto . inet_service . " + at,
			Flags:   []knftables.SetFlag{knftables.IntervalFlag},
			Comment: knftables.PtrTo("LoadBalancer IP . protocol . port . allowed source range")})
		set(&knftables.Set{Name: hairpinSet(f), Type: at + " . " + at,
			Comment: knftables.PtrTo("endpoint . endpoint: a pod reaching itself through a service is masqueraded")})
		for _, pr := range protocols {
			byAddr := fmt.Sprintf("%s daddr . %s dport . numgen random mod 1 : %s daddr . %s dport", ip, pr, ip, pr)
			byPort := fmt.Sprintf("%s dport . numgen random mod 1 : %s daddr . %s dport", pr, ip, pr)
			addMap(&knftables.Map{Name: endpointsMap(f, pr), TypeOf: byAddr,
				Comment: knftables.PtrTo("service address . port . slot: endpoint")})
			addMap(&knftables.Map{Name: localEndpointsMap(f, pr), TypeOf: byAddr,
				Comment: knftables.PtrTo("external address . port . slot: endpoint on this node (policy Local)")})
			addMap(&knftables.Map{Name: nodePortEndpointsMap(f, pr), TypeOf: byPort,
				Comment: knftables.PtrTo("node port . slot: endpoint")})
			addMap(&knftables.Map{Name: nodePortLocalEndpointsMap(f, pr), TypeOf: byPort,
				Comment: knftables.PtrTo("node port . slot: endpoint on this node (policy Local)")})
		}
		rule(chainServices,
			fmt.Sprintf("%s daddr . meta l4proto . th dport vmap @%s", ip, serviceIPsMap(f)),
			fmt.Sprintf("%s meta l4proto . th dport vmap @%s", nodePorts, serviceNodePortsMap(f)))
		rule(chainRejectServices,
			fmt.Sprintf("%s daddr . meta l4proto . th dport @%s %s daddr . meta l4proto . th dport . %s saddr != @%s drop",
				ip, firewallSet(f), ip, ip, firewallAllowSet(f)),
			fmt.Sprintf("%s daddr . meta l4proto . th dport @%s reject", ip, noEndpointServicesSet(f)),
			fmt.Sprintf("%s meta l4proto . th dport @%s reject", nodePorts, noEndpointNodePortsSet(f)))
		rule(chainMasquerading, fmt.Sprintf("ct status dnat %s saddr . %s daddr @%s masquerade", ip, ip, hairpinSet(f)))
	}
	rule(chainMasquerading,
		fmt.Sprintf("meta mark & %s == 0 return", c.masqMark),
		fmt.Sprintf("meta mark set meta mark ^ %s", c.masqMark),
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
