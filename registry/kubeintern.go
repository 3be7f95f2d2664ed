package registry

import (
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// interner shares the strings that repeat across objects (namespaces,
// service and port names, node names, zones) and the endpoints' places, so
// that 100,000 endpoints do not hold 100,000 copies of a few dozen node
// names. It is safe for concurrent use by several informers.
//
// Invariants (TestInternerInvariants):
//   - Its set only grows, for the life of the source: it must only hold
//     strings whose number follows the cluster's shape, never one per
//     endpoint or pod (addresses, hostnames, pod names), which churn.
//   - An interned string is shared as is: the bytes under it are never
//     written again (strings from the decoder, or textArena copies).
//   - A shared *Place is read-only: endpoints of one node hold the same
//     pointer, so writing one would move them all.
type interner struct {
	mu     sync.Mutex
	strs   map[string]string
	places map[Place]*Place
}

func newInterner() *interner {
	return &interner{strs: map[string]string{}, places: map[Place]*Place{}}
}

// place returns the shared copy of p (nil stays nil).
func (in *interner) place(p *Place) *Place {
	if p == nil {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if q, ok := in.places[*p]; ok {
		return q
	}
	in.places[*p] = p
	return p
}

// lookup returns the shared copy of s, if there is one.
func (in *interner) lookup(s string) (string, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	t, ok := in.strs[s]
	return t, ok
}

func (in *interner) intern(s string) string {
	if s == "" {
		return s
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if t, ok := in.strs[s]; ok {
		return t
	}
	in.strs[s] = s
	return s
}

// convertSlice converts a slice of a service (the label selector of the
// watch guarantees its service-name label) and shares its strings.
func (in *interner) convertSlice(s *discoveryv1.EndpointSlice) (*EndpointSlice, error) {
	out, err := convertLabelledSlice(s)
	if err != nil {
		return nil, err
	}
	in.slice(out)
	return out, nil
}

// convertService converts a service and shares its strings.
func (in *interner) convertService(s *corev1.Service) (*Service, error) {
	out, err := ConvertService(s)
	if err != nil {
		return nil, err
	}
	in.service(out)
	return out, nil
}

// slice shares the strings of a slice that repeat across objects: its
// namespace and service name, its ports' names, its endpoints' node and
// zone names; and packs its endpoints' own names.
func (in *interner) slice(sl *EndpointSlice) {
	sl.Namespace, sl.Service = in.intern(sl.Namespace), in.intern(sl.Service)
	for i := range sl.Ports {
		sl.Ports[i].Name = in.intern(sl.Ports[i].Name)
	}
	for i := range sl.Endpoints {
		e := &sl.Endpoints[i]
		if e.Place != nil {
			e.Place = in.place(&Place{NodeName: in.intern(e.Place.NodeName), Zone: in.intern(e.Place.Zone)})
		}
	}
	packNames(sl.Endpoints)
}

// packNames moves the hostnames and pod names of a slice's endpoints into
// one string: decoded one by one they are 100 small allocations per slice
// among the decoder's garbage, whose pages they would keep in use. A pod
// name equal to the hostname (StatefulSets) is stored once.
func packNames(eps []Endpoint) {
	n := 0
	for i := range eps {
		e := &eps[i]
		n += len(e.Hostname)
		if e.PodName != e.Hostname {
			n += len(e.PodName)
		}
	}
	if n == 0 {
		return
	}
	var b strings.Builder
	b.Grow(n)
	for i := range eps {
		e := &eps[i]
		b.WriteString(e.Hostname)
		if e.PodName != e.Hostname {
			b.WriteString(e.PodName)
		}
	}
	all, off := b.String(), 0
	for i := range eps {
		e := &eps[i]
		same := e.PodName == e.Hostname
		e.Hostname, off = all[off:off+len(e.Hostname)], off+len(e.Hostname)
		if same {
			e.PodName = e.Hostname
		} else {
			e.PodName, off = all[off:off+len(e.PodName)], off+len(e.PodName)
		}
	}
}

// service shares a service's namespace and port names.
func (in *interner) service(svc *Service) {
	svc.Namespace = in.intern(svc.Namespace)
	for i := range svc.Ports {
		p := &svc.Ports[i]
		p.Name, p.TargetPort = in.intern(p.Name), in.intern(p.TargetPort)
	}
}
