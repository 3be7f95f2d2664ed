package registry

import (
	"net/netip"
	"unsafe"
)

// compactObjects moves the objects of one parsed file into a few large
// blocks: the services, slices, endpoints and pods into one array each,
// their strings into shared text blocks (repeated ones once, through in).
// Parsing leaves the objects scattered among far more garbage (the YAML
// and JSON trees), whose pages they would keep in use after it is
// collected; the compact copy lets those pages go. The blocks live as long
// as the file's objects do: they are replaced together.
//
// Invariants (TestCompactBlocksInvariants): each block is allocated at its
// final size from counts taken first, so appendBlock never reallocates
// (an object would otherwise land in a second array, defeating the
// point); every copy is capped (cap == len) so that appending to one
// cannot overwrite its neighbour; text is never written after it is
// copied, so strings over it stay immutable.
func compactObjects(o Objects, in *interner) Objects {
	var text textArena
	str := func(s string) string {
		if t, ok := in.lookup(s); ok {
			return t
		}
		return text.copy(s)
	}
	shared := func(s string) string { // strings that repeat across objects
		if t, ok := in.lookup(s); ok {
			return t
		}
		return in.intern(text.copy(s))
	}
	var nPorts, nIPs, nSlicePorts, nEndpoints, nPodIPs int
	for _, s := range o.Services {
		nPorts += len(s.Ports)
		nIPs += len(s.ClusterIPs)
	}
	for _, sl := range o.Slices {
		nSlicePorts += len(sl.Ports)
		nEndpoints += len(sl.Endpoints)
	}
	for _, p := range o.Pods {
		nPodIPs += len(p.IPs)
	}
	out := Objects{
		Services:   make([]*Service, len(o.Services)),
		Slices:     make([]*EndpointSlice, len(o.Slices)),
		Pods:       make([]*Pod, len(o.Pods)),
		Namespaces: make([]string, len(o.Namespaces)),
	}
	services := make([]Service, len(o.Services))
	ports := make([]ServicePort, 0, nPorts)
	ips := make([]netip.Addr, 0, nIPs+nPodIPs)
	for i, s := range o.Services {
		c := &services[i]
		*c = *s
		c.Namespace, c.Name, c.ExternalName = shared(s.Namespace), str(s.Name), str(s.ExternalName)
		if s.ClusterIPs != nil {
			c.ClusterIPs = appendBlock(&ips, s.ClusterIPs)
		}
		if s.Ports != nil {
			c.Ports = appendBlock(&ports, s.Ports)
			for j := range c.Ports {
				p := &c.Ports[j]
				p.Name, p.Protocol, p.TargetPort = shared(p.Name), Protocol(shared(string(p.Protocol))), shared(p.TargetPort)
			}
		}
		out.Services[i] = c
	}
	slicesArr := make([]EndpointSlice, len(o.Slices))
	slicePorts := make([]EndpointPort, 0, nSlicePorts)
	endpoints := make([]Endpoint, 0, nEndpoints)
	for i, sl := range o.Slices {
		c := &slicesArr[i]
		*c = *sl
		c.Namespace, c.Name, c.Service = shared(sl.Namespace), str(sl.Name), shared(sl.Service)
		if sl.Ports != nil {
			c.Ports = appendBlock(&slicePorts, sl.Ports)
			for j := range c.Ports {
				p := &c.Ports[j]
				p.Name, p.Protocol = shared(p.Name), Protocol(shared(string(p.Protocol)))
			}
		}
		if sl.Endpoints != nil {
			c.Endpoints = appendBlock(&endpoints, sl.Endpoints)
			for j := range c.Endpoints {
				e := &c.Endpoints[j]
				e.Hostname = str(e.Hostname)
				if e.PodName == e.Hostname {
					e.PodName = e.Hostname
				} else {
					e.PodName = str(e.PodName)
				}
				if e.Place != nil {
					e.Place = in.place(&Place{NodeName: shared(e.Place.NodeName), Zone: shared(e.Place.Zone)})
				}
			}
		}
		out.Slices[i] = c
	}
	pods := make([]Pod, len(o.Pods))
	for i, p := range o.Pods {
		c := &pods[i]
		*c = *p
		c.Namespace, c.Name, c.Hostname, c.Subdomain = shared(p.Namespace), str(p.Name), str(p.Hostname), str(p.Subdomain)
		if p.IPs != nil {
			c.IPs = appendBlock(&ips, p.IPs)
		}
		out.Pods[i] = c
	}
	for i, ns := range o.Namespaces {
		out.Namespaces[i] = shared(ns)
	}
	out.Imports, out.MCSSlices = o.Imports, o.MCSSlices // few: not compacted
	return out
}

// appendBlock appends src to the block *dst (allocated at its final size)
// and returns the copy, capped so that appending to it cannot run into
// its neighbour.
func appendBlock[T any](dst *[]T, src []T) []T {
	off := len(*dst)
	*dst = append(*dst, src...)
	return (*dst)[off:len(*dst):len(*dst)]
}

// textArena copies strings into 64 KiB blocks. Copied bytes are never
// written again, so the strings over them are immutable.
type textArena struct{ block []byte }

func (a *textArena) copy(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > 1024 {
		return string([]byte(s)) // a rare long one on its own
	}
	if cap(a.block)-len(a.block) < len(s) {
		a.block = make([]byte, 0, 64<<10)
	}
	off := len(a.block)
	a.block = append(a.block, s...)
	return unsafe.String(&a.block[off], len(s))
}
