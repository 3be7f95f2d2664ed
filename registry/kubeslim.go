package registry

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The informer transforms below keep, of each API object, only what the
// conversions in convert.go read (plus name, namespace and resourceVersion,
// which the informer needs), so that the informers' caches grow with the
// data DNS serves rather than with managedFields, annotations, pod specs and
// statuses. They build new objects (the informer allows mutating in place,
// but a fresh object drops the large decoded ones for the collector) and
// are idempotent, as client-go requires.

func slimMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, ResourceVersion: m.ResourceVersion}
}

// slimService keeps what ConvertService reads.
func slimService(s *corev1.Service) *corev1.Service {
	out := &corev1.Service{
		ObjectMeta: slimMeta(&s.ObjectMeta),
		Spec: corev1.ServiceSpec{
			Type:                     s.Spec.Type,
			ClusterIP:                s.Spec.ClusterIP,
			ClusterIPs:               s.Spec.ClusterIPs,
			ExternalName:             s.Spec.ExternalName,
			PublishNotReadyAddresses: s.Spec.PublishNotReadyAddresses,
			SessionAffinity:          s.Spec.SessionAffinity,
			SessionAffinityConfig:    s.Spec.SessionAffinityConfig,
			ExternalTrafficPolicy:    s.Spec.ExternalTrafficPolicy,
		},
	}
	if len(s.Spec.Ports) > 0 {
		out.Spec.Ports = make([]corev1.ServicePort, len(s.Spec.Ports))
		for i, p := range s.Spec.Ports {
			out.Spec.Ports[i] = corev1.ServicePort{Name: p.Name, Protocol: p.Protocol, Port: p.Port, TargetPort: p.TargetPort, NodePort: p.NodePort}
		}
	}
	return out
}

// slimPod keeps what ConvertPod reads.
func slimPod(p *corev1.Pod) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: slimMeta(&p.ObjectMeta),
		Spec:       corev1.PodSpec{Hostname: p.Spec.Hostname, Subdomain: p.Spec.Subdomain, HostNetwork: p.Spec.HostNetwork},
		Status:     corev1.PodStatus{PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs},
	}
}

// slimNamespace keeps the name.
func slimNamespace(n *corev1.Namespace) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: slimMeta(&n.ObjectMeta)}
}

// slimmer strips EndpointSlices and shares the strings and flags that
// repeat across endpoints (node names, zones, conditions), so that 100,000
// endpoints do not hold 100,000 copies of a dozen node names. It is safe for
// concurrent use by several informers.
type slimmer struct {
	mu      sync.Mutex
	strs    map[string]*string
	yes, no *bool // shared condition values
}

func newSlimmer() *slimmer {
	t, f := true, false
	return &slimmer{strs: map[string]*string{}, yes: &t, no: &f}
}

// shared returns a pointer to a string equal to *p shared by every caller
// (nil for nil). The set only grows; node names and zones are few.
func (s *slimmer) shared(p *string) *string {
	if p == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.strs[*p]; ok {
		return q
	}
	v := *p
	s.strs[v] = &v
	return &v
}

func (s *slimmer) flag(b *bool) *bool {
	switch {
	case b == nil:
		return nil
	case *b:
		return s.yes
	default:
		return s.no
	}
}

// endpointSlice keeps what ConvertEndpointSlice reads: the service-name
// label, address type, ports and, per endpoint, the first address, the
// conditions, hostname, node, zone and the name of a Pod target.
func (s *slimmer) endpointSlice(sl *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	out := &discoveryv1.EndpointSlice{
		ObjectMeta:  slimMeta(&sl.ObjectMeta),
		AddressType: sl.AddressType,
		Ports:       sl.Ports,
	}
	if svc, ok := sl.Labels[ServiceNameLabel]; ok {
		out.Labels = map[string]string{ServiceNameLabel: svc}
	}
	if len(sl.Endpoints) == 0 {
		return out
	}
	out.Endpoints = make([]discoveryv1.Endpoint, len(sl.Endpoints))
	for i := range sl.Endpoints {
		e := &sl.Endpoints[i]
		o := &out.Endpoints[i]
		if len(e.Addresses) > 0 {
			o.Addresses = []string{e.Addresses[0]}
		}
		o.Conditions = discoveryv1.EndpointConditions{
			Ready:       s.flag(e.Conditions.Ready),
			Serving:     s.flag(e.Conditions.Serving),
			Terminating: s.flag(e.Conditions.Terminating),
		}
		o.Hostname = e.Hostname
		o.NodeName = s.shared(e.NodeName)
		o.Zone = s.shared(e.Zone)
		if r := e.TargetRef; r != nil && r.Kind == "Pod" {
			o.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: r.Name}
		}
	}
	return out
}
