// Package registry holds the cluster model that clusterdns answers from: slim
// services, endpoints and pods converted from the Kubernetes API types, kept
// by a Store as an immutable, indexed Snapshot that is swapped atomically.
//
// Sources (the files under zones/, the Kubernetes API) feed a Store through
// its Upsert/Delete methods; readers (the DNS server, the node proxy) call
// Store.Snapshot, which never blocks and never locks.
package registry

import (
	"net/netip"
	"time"
)

// ServiceKind tells how a service is answered in DNS.
type ServiceKind uint8

const (
	// KindClusterIP is a service with one virtual IP per family.
	KindClusterIP ServiceKind = iota
	// KindHeadless is a service with clusterIP None: DNS answers its endpoints.
	KindHeadless
	// KindExternalName is an alias (CNAME) to a name outside the cluster.
	KindExternalName
)

// String returns the Kubernetes spelling of the kind.
func (k ServiceKind) String() string {
	switch k {
	case KindHeadless:
		return "Headless"
	case KindExternalName:
		return "ExternalName"
	default:
		return "ClusterIP"
	}
}

// Protocol is a transport protocol of a port: "TCP", "UDP" or "SCTP".
type Protocol string

// The protocols Kubernetes services carry.
const (
	TCP  Protocol = "TCP"
	UDP  Protocol = "UDP"
	SCTP Protocol = "SCTP"
)

// Key names one object in a namespace.
type Key struct {
	Namespace, Name string
}

// String returns "namespace/name".
func (k Key) String() string { return k.Namespace + "/" + k.Name }

// ServicePort is one port of a service.
type ServicePort struct {
	Name       string   // empty for the single unnamed port
	Protocol   Protocol // TCP when the API object leaves it empty
	Port       int32    // the service (virtual IP) port
	TargetPort string   // number or the name of a container port, as in the API
	NodePort   int32    // 0 unless type NodePort or LoadBalancer
}

// Service is the slim form of a core/v1 Service: only what DNS answers and
// the node proxy's rules need.
type Service struct {
	Key
	Kind                     ServiceKind
	ClusterIPs               []netip.Addr // empty for headless and ExternalName
	ExternalName             string       // lower-case, no trailing dot; ExternalName only
	Ports                    []ServicePort
	PublishNotReadyAddresses bool
	// SessionAffinityTimeout is the ClientIP affinity timeout in seconds,
	// 0 when sessionAffinity is None.
	SessionAffinityTimeout int32
	// ExternalTrafficLocal is true for externalTrafficPolicy: Local.
	ExternalTrafficLocal bool
}

// EndpointPort is a port that every endpoint of one slice serves.
type EndpointPort struct {
	Name     string
	Protocol Protocol
	Port     int32
}

// Endpoint is one backend of a service. The API allows several addresses per
// endpoint but consumers use only the first (Kubernetes documents this); so
// does clusterdns.
type Endpoint struct {
	Address  netip.Addr
	Hostname string // from the slice, "" when unset
	PodName  string // targetRef name when it is a Pod
	// Place is the endpoint's node and zone, shared by the endpoints of
	// one node (the sources intern it); nil when neither is known.
	Place       *Place
	Ready       bool // conditions.ready; nil counts as ready
	Serving     bool // conditions.serving; nil counts as Ready
	Terminating bool // conditions.terminating; nil counts as false
}

// Place is where an endpoint runs.
type Place struct {
	NodeName string
	Zone     string // topology.kubernetes.io/zone
}

// NodeName returns the name of the endpoint's node, "" when unknown.
func (e *Endpoint) NodeName() string {
	if e.Place == nil {
		return ""
	}
	return e.Place.NodeName
}

// Zone returns the endpoint's topology zone, "" when unknown.
func (e *Endpoint) Zone() string {
	if e.Place == nil {
		return ""
	}
	return e.Place.Zone
}

// EndpointSlice is the slim form of a discovery/v1 EndpointSlice.
type EndpointSlice struct {
	Key              // the slice's own namespace and name
	Service   string // label kubernetes.io/service-name
	Ports     []EndpointPort
	Endpoints []Endpoint // only IPv4/IPv6 slices are kept; FQDN slices are dropped
	// Triggered is the annotation endpoints.kubernetes.io/last-change-trigger-time
	// that the EndpointSlice controller sets: when the change of a pod or
	// of the service that this version of the slice reflects happened.
	// Zero without it (slices not managed by the controller).
	Triggered time.Time
}

// Pod is the slim form of a core/v1 Pod: what pod records, hostname records
// and client-namespace lookups need.
type Pod struct {
	Key
	IPs         []netip.Addr
	Hostname    string
	Subdomain   string
	HostNetwork bool
}
