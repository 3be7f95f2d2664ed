package registry

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// interner shares the strings that repeat across objects (namespaces, port
// names, node names, zones) so that 100,000 endpoints do not hold 100,000
// copies of a few dozen node names. It is safe for concurrent use by
// several informers; its set only grows (those names are few).
type interner struct {
	mu   sync.Mutex
	strs map[string]string
}

func newInterner() *interner { return &interner{strs: map[string]string{}} }

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
// zone names; an endpoint's pod name equal to its hostname (StatefulSets)
// becomes the same string.
func (in *interner) slice(sl *EndpointSlice) {
	sl.Namespace, sl.Service = in.intern(sl.Namespace), in.intern(sl.Service)
	for i := range sl.Ports {
		sl.Ports[i].Name = in.intern(sl.Ports[i].Name)
	}
	for i := range sl.Endpoints {
		e := &sl.Endpoints[i]
		e.NodeName, e.Zone = in.intern(e.NodeName), in.intern(e.Zone)
		if e.PodName == e.Hostname {
			e.PodName = e.Hostname
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
