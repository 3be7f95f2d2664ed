package registry

import (
	"iter"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/clusterdns/clusterdns/internal/cow"
	"github.com/clusterdns/clusterdns/internal/dnswire"
)

// ServiceEntry is a service with its endpoints merged from all of its
// EndpointSlices: duplicate addresses dropped, both families kept, in a
// stable order (slice name, then position in the slice).
type ServiceEntry struct {
	*Service
	Endpoints []MergedEndpoint
	// TriggerTime is the latest endpoints.kubernetes.io/last-change-trigger-time
	// of the service's slices (zero when none has it): when the change
	// that the endpoints reflect happened, for network programming latency.
	TriggerTime time.Time
}

// MergedEndpoint is an endpoint of a service with the ports of the slice(s)
// it came from and the DNS hostname it is known by.
type MergedEndpoint struct {
	*Endpoint // shared with the slice it came from
	// DNSName is the endpoint's label under the service: its hostname, else
	// the pod name (with Options.EndpointPodNames), else the dashed address
	// (10-1-2-3, fd00--1). Stable for a given endpoint; empty with
	// Options.NoDNSLabels.
	DNSName string
	// ports is the port list of the endpoint's slice (a pointer to it: 8
	// bytes an endpoint rather than 24), or the union of its slices'.
	ports *[]EndpointPort
}

// Ports returns the ports the endpoint serves (shared: do not modify).
func (m *MergedEndpoint) Ports() []EndpointPort {
	if m.ports == nil {
		return nil
	}
	return *m.ports
}

// Published reports whether the endpoint is answered in DNS: ready, or any
// state when the service publishes not-ready addresses.
func (e *ServiceEntry) Published(ep *MergedEndpoint) bool {
	return ep.Ready || e.PublishNotReadyAddresses
}

// Snapshot is an immutable view of the cluster. Every lookup is a map hit;
// a Snapshot is never modified after the Store publishes it, so readers use
// it without locks for as long as they like.
type Snapshot struct {
	// Serial increases with every published change (it is the SOA serial).
	Serial uint32
	// Changed lists the services whose entry differs from the previous
	// snapshot (added, updated or removed). Nil with Full set.
	Changed []Key
	// Full is set when consumers must rebuild everything from this snapshot
	// (the first one, or a change of the set of namespaces).
	Full bool
	// Triggers lists the EndpointSlice changes this snapshot publishes that
	// carry the controller's trigger time (after the first sync; a relist
	// of an unchanged slice is not one): the server measures DNS
	// programming latency from them.
	Triggers []Trigger

	services   *cow.Map[string, *ServiceEntry] // key: Key.String()
	namespaces map[string]struct{}
	pods       *cow.Map[string, *Pod]     // key: Key.String()
	podsByIP   *cow.Map[[16]byte, []*Pod] // key: addrKey
	clusterset *ClusterSet                // never nil in a published snapshot
}

// ClusterSet returns the multi-cluster services (ServiceImports with their
// endpoints); empty, never nil, in a published snapshot.
func (s *Snapshot) ClusterSet() *ClusterSet { return s.clusterset }

func (s *Snapshot) clusterSetOrNil() *ClusterSet {
	if s == nil {
		return nil
	}
	return s.clusterset
}

// Trigger is a published EndpointSlice change of a service and when the
// change it reflects happened (EndpointSlice.TriggerTime).
type Trigger struct {
	Service Key
	At      time.Time
}

// Service returns the service entry, or nil. It does not allocate (the
// DNS server reads it per PTR answer).
func (s *Snapshot) Service(k Key) *ServiceEntry {
	var buf [320]byte
	key := append(append(append(buf[:0], k.Namespace...), '/'), k.Name...)
	e, _ := cow.GetBytes(s.services, key)
	return e
}

// Services iterates over every service in no particular order.
func (s *Snapshot) Services() iter.Seq[*ServiceEntry] { return s.services.Values() }

// ServiceCount returns the number of services.
func (s *Snapshot) ServiceCount() int { return s.services.Len() }

// HasNamespace reports whether the namespace exists: declared as a Namespace
// object, or holding at least one service or pod.
func (s *Snapshot) HasNamespace(ns string) bool {
	_, ok := s.namespaces[ns]
	return ok
}

// Namespaces iterates over every namespace.
func (s *Snapshot) Namespaces() iter.Seq[string] { return maps.Keys(s.namespaces) }

// PodsByIP returns the pods that have this IP (several when host-network
// pods share the node's address).
func (s *Snapshot) PodsByIP(ip netip.Addr) []*Pod {
	p, _ := s.podsByIP.Get(addrKey(ip))
	return p
}

// addrKey is an address's 16-byte form, the key of podsByIP.
func addrKey(a netip.Addr) [16]byte { return a.Unmap().As16() }

// namespacesOrNil returns the namespaces of s, nil for a nil snapshot.
func (s *Snapshot) namespacesOrNil() map[string]struct{} {
	if s == nil {
		return nil
	}
	return s.namespaces
}

// Pods iterates over every pod.
func (s *Snapshot) Pods() iter.Seq[*Pod] { return s.pods.Values() }

// mergeScratch is the working space of mergeEndpoints, reused from service
// to service: a full build of 100,000 endpoints leaves no map or buffer per
// service behind as garbage among the lists it keeps (which would hold the
// heap's pages).
type mergeScratch struct {
	noLabels bool // Options.NoDNSLabels: leave DNSName empty
	seen     map[netip.Addr]int
	text     []byte      // generated labels of one service
	labels   []labelSpan // where each is in text
}

type labelSpan struct{ ep, start, end int }

// mergeEndpoints builds a service's endpoint list from its slices (in
// name order). The
// labels it generates (dashed addresses, lower-case pod names) share one
// string per service.
func mergeEndpoints(slicesOf []*EndpointSlice, podNames bool, sc *mergeScratch) []MergedEndpoint {
	if len(slicesOf) == 0 {
		return nil
	}
	n := 0
	for _, sl := range slicesOf {
		n += len(sl.Endpoints)
	}
	out := make([]MergedEndpoint, 0, n)
	if sc.seen == nil {
		sc.seen = map[netip.Addr]int{}
	}
	clear(sc.seen)
	sc.text, sc.labels = sc.text[:0], sc.labels[:0]
	label := func(i int, ep *Endpoint) {
		if sc.noLabels {
			return
		}
		if ep.Hostname != "" {
			out[i].DNSName = ep.Hostname
			return
		}
		start := len(sc.text)
		sc.text = appendLabel(sc.text, ep, podNames)
		sc.labels = append(sc.labels, labelSpan{ep: i, start: start, end: len(sc.text)})
	}
	for _, sl := range slicesOf { // in name order
		for j := range sl.Endpoints {
			ep := &sl.Endpoints[j]
			if i, dup := sc.seen[ep.Address]; dup {
				m := &out[i]
				if !m.Ready && ep.Ready { // the ready copy wins
					m.Endpoint = ep
					label(i, ep)
				}
				for _, p := range sl.Ports {
					if !slices.Contains(m.Ports(), p) {
						union := append(slices.Clone(m.Ports()), p)
						m.ports = &union
					}
				}
				continue
			}
			sc.seen[ep.Address] = len(out)
			out = append(out, MergedEndpoint{Endpoint: ep, ports: &sl.Ports})
			label(len(out)-1, ep)
		}
	}
	if len(sc.labels) > 0 {
		all := string(sc.text)
		for _, l := range sc.labels { // in order: a replaced label's last write wins
			out[l.ep].DNSName = all[l.start:l.end]
		}
	}
	if len(sc.seen) > 1<<12 {
		*sc = mergeScratch{noLabels: sc.noLabels} // do not keep the tables of a rare huge service
	}
	return slices.Clip(out)
}

// appendLabel appends the label of an endpoint without a hostname: its pod
// name in lower case (with podNames), else its dashed address.
func appendLabel(b []byte, ep *Endpoint, podNames bool) []byte {
	if podNames && ep.PodName != "" {
		return dnswire.AppendLower(b, ep.PodName)
	}
	start := len(b)
	b = ep.Address.AppendTo(b)
	for i := start; i < len(b); i++ {
		if b[i] == '.' || b[i] == ':' {
			b[i] = '-'
		}
	}
	return b
}

// DashedIP writes an address as a DNS label: 10.1.2.3 → 10-1-2-3,
// fd00::1 → fd00--1.
func DashedIP(a netip.Addr) string {
	s := a.String()
	if a.Is4() {
		return strings.ReplaceAll(s, ".", "-")
	}
	return strings.ReplaceAll(s, ":", "-")
}
