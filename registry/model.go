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
	// Traffic holds what only the node proxy reads (external addresses,
	// traffic policies, health-check port); nil when all of it is unset,
	// so that a plain ClusterIP service pays one pointer for it.
	Traffic *ServiceTraffic
}

// ServiceTraffic is the part of a Service's spec and status that decides
// how the node proxy routes traffic to it beyond the ClusterIP and the
// NodePorts. Entries that do not parse are left out and described in
// Invalid, so that the rest of the service keeps working.
type ServiceTraffic struct {
	// ExternalIPs is spec.externalIPs.
	ExternalIPs []netip.Addr
	// LoadBalancerIPs are the status.loadBalancer.ingress[].ip addresses
	// whose ipMode is VIP (or unset); Proxy-mode ingresses are left to
	// the load balancer.
	LoadBalancerIPs []netip.Addr
	// SourceRanges is spec.loadBalancerSourceRanges: when set, only these
	// client addresses may reach the LoadBalancer IPs.
	SourceRanges []netip.Prefix
	// InternalTrafficLocal is internalTrafficPolicy: Local.
	InternalTrafficLocal bool
	// HealthCheckNodePort is spec.healthCheckNodePort (0 when none).
	HealthCheckNodePort int32
	// TrafficDistribution is spec.trafficDistribution ("" when unset).
	TrafficDistribution string
	// Invalid describes the entries that were skipped, one per entry.
	Invalid []string
}

// EndpointHints is discovery/v1 EndpointHints: the zones and nodes an
// endpoint is meant to serve under topology-aware routing.
type EndpointHints struct {
	ForZones []string
	ForNodes []string
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
	// Hints are the slice's topology hints for the endpoint; nil when
	// it has none.
	Hints *EndpointHints
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
	// TriggerTime is the annotation endpoints.kubernetes.io/last-change-trigger-time
	// (zero when absent or unparsable).
	TriggerTime time.Time
	// Cluster is the label multicluster.kubernetes.io/source-cluster of a
	// slice of a ServiceImport (whose Service is then the label
	// multicluster.kubernetes.io/service-name); "" for a local slice.
	Cluster string
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
