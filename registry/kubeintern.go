package registry

import (
	"sync"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// interner shares the strings that repeat across endpoints (node names,
// zones) so that 100,000 endpoints do not hold 100,000 copies of a few
// dozen node names. It is safe for concurrent use by several informers;
// its set only grows (node names and zones are few).
type interner struct {
	mu   sync.Mutex
	strs map[string]string
}

func newInterner() *interner { return &interner{strs: map[string]string{}} }

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
// watch guarantees its service-name label) and shares its endpoints' node
// and zone names.
func (in *interner) convertSlice(s *discoveryv1.EndpointSlice) (*EndpointSlice, error) {
	out, err := convertLabelledSlice(s)
	if err != nil {
		return nil, err
	}
	for i := range out.Endpoints {
		e := &out.Endpoints[i]
		e.NodeName, e.Zone = in.intern(e.NodeName), in.intern(e.Zone)
	}
	return out, nil
}
