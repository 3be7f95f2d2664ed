package registry

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// ServiceNameLabel is the EndpointSlice label that names its service.
const ServiceNameLabel = discoveryv1.LabelServiceName

// serviceBlock is a Service with room for one port and one address.
type serviceBlock struct {
	svc  Service
	port [1]ServicePort
	ip   [1]netip.Addr
}

// ConvertService turns an API Service into the slim model. It is the one
// conversion used by every source (files and the Kubernetes watch). It fails
// on a clusterIP that is not an IP address.
func ConvertService(s *corev1.Service) (*Service, error) {
	// The common service (one port, at most one address) is one
	// allocation: its parts live as long as it does.
	block := new(serviceBlock)
	out := &block.svc
	*out = Service{
		Key:                      Key{Namespace: nsOrDefault(s.Namespace), Name: s.Name},
		PublishNotReadyAddresses: s.Spec.PublishNotReadyAddresses,
		ExternalTrafficLocal:     s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
	}
	if len(s.Spec.Ports) == 1 {
		out.Ports = block.port[:0:1]
	}
	if s.Name == "" {
		return nil, fmt.Errorf("service without metadata.name")
	}
	switch {
	case s.Spec.Type == corev1.ServiceTypeExternalName:
		out.Kind = KindExternalName
		out.ExternalName = strings.TrimSuffix(strings.ToLower(s.Spec.ExternalName), ".")
		if out.ExternalName == "" {
			return nil, fmt.Errorf("service %s: type ExternalName without spec.externalName", out.Key)
		}
	case s.Spec.ClusterIP == corev1.ClusterIPNone:
		out.Kind = KindHeadless
	default:
		out.Kind = KindClusterIP
		ips := s.Spec.ClusterIPs
		if len(ips) == 0 && s.Spec.ClusterIP != "" {
			ips = []string{s.Spec.ClusterIP}
		}
		// The API keeps clusterIP equal to clusterIPs[0]; a file may not.
		if c := s.Spec.ClusterIP; c != "" && len(ips) > 0 && c != ips[0] {
			return nil, fmt.Errorf("service %s: clusterIP %q differs from clusterIPs[0] %q", out.Key, c, ips[0])
		}
		if len(ips) == 1 {
			out.ClusterIPs = block.ip[:0:1]
		}
		for _, ip := range ips {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				return nil, fmt.Errorf("service %s: clusterIP %q: %w", out.Key, ip, err)
			}
			out.ClusterIPs = append(out.ClusterIPs, a.Unmap())
		}
	}
	if a := s.Spec.SessionAffinity; a == corev1.ServiceAffinityClientIP {
		out.SessionAffinityTimeout = corev1.DefaultClientIPServiceAffinitySeconds
		if c := s.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			out.SessionAffinityTimeout = *c.ClientIP.TimeoutSeconds
		}
	}
	for _, p := range s.Spec.Ports {
		out.Ports = append(out.Ports, ServicePort{
			Name:       p.Name,
			Protocol:   protocol(p.Protocol),
			Port:       p.Port,
			TargetPort: p.TargetPort.String(),
			NodePort:   p.NodePort,
		})
	}
	return out, nil
}

// ConvertEndpointSlice turns an API EndpointSlice into the slim model. FQDN
// slices convert to a slice without endpoints; an address that is not an IP
// is an error.
func ConvertEndpointSlice(s *discoveryv1.EndpointSlice) (*EndpointSlice, error) {
	out := &EndpointSlice{
		Key:     Key{Namespace: nsOrDefault(s.Namespace), Name: s.Name},
		Service: s.Labels[ServiceNameLabel],
	}
	if s.Name == "" {
		return nil, fmt.Errorf("endpointslice without metadata.name")
	}
	if v, ok := s.Annotations[corev1.EndpointsLastChangeTriggerTime]; ok {
		// A bad value only loses the programming-latency sample.
		out.Triggered, _ = time.Parse(time.RFC3339Nano, v)
	}
	for _, p := range s.Ports {
		ep := EndpointPort{Protocol: TCP}
		if p.Name != nil {
			ep.Name = *p.Name
		}
		if p.Protocol != nil {
			ep.Protocol = protocol(*p.Protocol)
		}
		if p.Port != nil {
			ep.Port = *p.Port
		}
		out.Ports = append(out.Ports, ep)
	}
	if s.AddressType == discoveryv1.AddressTypeFQDN {
		return out, nil
	}
	out.Endpoints = make([]Endpoint, 0, len(s.Endpoints))
	for _, e := range s.Endpoints {
		if len(e.Addresses) == 0 {
			continue
		}
		a, err := netip.ParseAddr(e.Addresses[0])
		if err != nil {
			return nil, fmt.Errorf("endpointslice %s: address %q: %w", out.Key, e.Addresses[0], err)
		}
		ep := Endpoint{
			Address:     a.Unmap(),
			Ready:       e.Conditions.Ready == nil || *e.Conditions.Ready,
			Terminating: e.Conditions.Terminating != nil && *e.Conditions.Terminating,
		}
		ep.Serving = ep.Ready
		if e.Conditions.Serving != nil {
			ep.Serving = *e.Conditions.Serving
		}
		if e.Hostname != nil {
			ep.Hostname = strings.ToLower(*e.Hostname)
		}
		if e.NodeName != nil || e.Zone != nil {
			ep.Place = &Place{}
			if e.NodeName != nil {
				ep.Place.NodeName = *e.NodeName
			}
			if e.Zone != nil {
				ep.Place.Zone = *e.Zone
			}
		}
		if r := e.TargetRef; r != nil && r.Kind == "Pod" {
			ep.PodName = r.Name
		}
		out.Endpoints = append(out.Endpoints, ep)
	}
	return out, nil
}

// ConvertPod turns an API Pod into the slim model. A pod without an IP yet
// converts to a pod without IPs.
func ConvertPod(p *corev1.Pod) (*Pod, error) {
	out := &Pod{
		Key:         Key{Namespace: nsOrDefault(p.Namespace), Name: p.Name},
		Hostname:    strings.ToLower(p.Spec.Hostname),
		Subdomain:   strings.ToLower(p.Spec.Subdomain),
		HostNetwork: p.Spec.HostNetwork,
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return out, nil // finished: its IP may already belong to another pod
	}
	ips := p.Status.PodIPs
	if len(ips) == 0 && p.Status.PodIP != "" {
		ips = []corev1.PodIP{{IP: p.Status.PodIP}}
	}
	for _, ip := range ips {
		a, err := netip.ParseAddr(ip.IP)
		if err != nil {
			return nil, fmt.Errorf("pod %s: podIP %q: %w", out.Key, ip.IP, err)
		}
		out.IPs = append(out.IPs, a.Unmap())
	}
	return out, nil
}

func protocol(p corev1.Protocol) Protocol {
	if p == "" {
		return TCP
	}
	return Protocol(strings.ToUpper(string(p)))
}

func nsOrDefault(ns string) string {
	if ns == "" {
		return corev1.NamespaceDefault
	}
	return ns
}
