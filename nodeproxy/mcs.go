package nodeproxy

import (
	"net/netip"
	"strings"

	"github.com/clusterdns/clusterdns/registry"
)

// importPrefix marks the key under which the Proxier keeps the ports of a
// ServiceImport of type ClusterSetIP: "clusterset:<name>" in the import's
// namespace. A Service name is a DNS label and cannot hold the colon, so
// an import never collides with a local service.
const importPrefix = "clusterset:"

// importKey is the Proxier's key of the import k.
func importKey(k registry.Key) registry.Key {
	return registry.Key{Namespace: k.Namespace, Name: importPrefix + k.Name}
}

// importOf returns the import that the Proxier key k stands for, and
// whether k is one.
func importOf(k registry.Key) (registry.Key, bool) {
	name, ok := strings.CutPrefix(k.Name, importPrefix)
	return registry.Key{Namespace: k.Namespace, Name: name}, ok
}

// importKeys returns the Proxier keys of the ClusterSetIP imports of cs.
func importKeys(cs *registry.ClusterSet) []registry.Key {
	var out []registry.Key
	for _, e := range cs.Entries() {
		if e.Type == registry.ImportClusterSetIP {
			out = append(out, importKey(e.Key))
		}
	}
	return out
}

// importPorts computes the desired ports of a ClusterSetIP import: each
// of its IPs and ports DNATed to the usable endpoints of every cluster's
// MCS slices, chosen as for a ClusterIP (ready, else serving and
// terminating) and rejected when there is none. Node ports, external
// addresses, traffic policies, topology and session affinity do not apply
// to imports. Headless imports and nil have none.
func importPorts(e *registry.ClusterSetEntry) []*servicePort {
	if e == nil || e.Type != registry.ImportClusterSetIP {
		return nil
	}
	at := func(i int) (*registry.Endpoint, []registry.EndpointPort) {
		return e.Endpoints[i].Endpoint, e.Endpoints[i].Ports
	}
	var ports []*servicePort
	seen := map[netip.Addr]bool{}
	for _, vip := range e.IPs {
		if seen[vip] {
			continue
		}
		seen[vip] = true
		fam := familyOf(vip)
		for _, sp := range e.Ports {
			pr := proto(sp.Protocol)
			if pr == "" || sp.Port <= 0 {
				continue
			}
			p := &servicePort{
				ID:  portID{Service: importKey(e.Key), Proto: pr, Port: sp.Port, Family: fam},
				VIP: vip,
			}
			// Remote clusters' topology hints name their own zones and
			// nodes: the empty node ignores them.
			p.ClusterEndpoints, _, p.HasEndpoints = categorizeEach(len(e.Endpoints), at, sp, fam, node{})
			p.Endpoints = p.ClusterEndpoints
			ports = append(ports, p)
		}
	}
	return ports
}
