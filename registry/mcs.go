package registry

// Multi-cluster services (KEP-1645, multicluster.x-k8s.io/v1alpha1): the
// slim ServiceImport and the clusterset view a Snapshot carries. The file
// source and the Kubernetes source convert through ConvertServiceImport and
// ConvertMCSEndpointSlice; the DNS server answers clusterset.local from
// Snapshot.ClusterSet.

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// The labels of an EndpointSlice that belongs to a ServiceImport (set by the
// MCS controller instead of kubernetes.io/service-name, so that kube-proxy and
// cluster.local leave it alone).
const (
	MCSServiceNameLabel   = "multicluster.kubernetes.io/service-name"
	MCSSourceClusterLabel = "multicluster.kubernetes.io/source-cluster"
)

// ImportType is spec.type of a ServiceImport.
type ImportType uint8

const (
	// ImportClusterSetIP is a service reached through the import's ips.
	ImportClusterSetIP ImportType = iota
	// ImportHeadless is answered with the endpoints of every cluster.
	ImportHeadless
)

// String returns the API spelling of the type.
func (t ImportType) String() string {
	if t == ImportHeadless {
		return "Headless"
	}
	return "ClusterSetIP"
}

// ServiceImport is the slim form of a multicluster.x-k8s.io ServiceImport.
type ServiceImport struct {
	Key
	Type  ImportType
	IPs   []netip.Addr // spec.ips; ClusterSetIP only
	Ports []ServicePort
}

// ClusterSetEntry is an imported service with the endpoints of every
// cluster that exports it, ordered by cluster, slice name, position.
type ClusterSetEntry struct {
	*ServiceImport
	Endpoints []ClusterEndpoint
}

// ClusterEndpoint is one endpoint of an imported service.
type ClusterEndpoint struct {
	*Endpoint
	Cluster string         // multicluster.kubernetes.io/source-cluster, lower-case
	Ports   []EndpointPort // the ports of its slice (shared: do not modify)
}

// ClusterSet is the immutable multi-cluster view of a Snapshot: every
// ServiceImport with its endpoints. Built whole when any import or MCS
// slice changes (clustersets hold few imports).
type ClusterSet struct {
	entries map[Key]*ClusterSetEntry
}

// Entry returns the imported service, or nil.
func (c *ClusterSet) Entry(k Key) *ClusterSetEntry {
	if c == nil {
		return nil
	}
	return c.entries[k]
}

// Entries returns the imported services sorted by namespace and name.
func (c *ClusterSet) Entries() []*ClusterSetEntry {
	if c == nil {
		return nil
	}
	keys := slices.SortedFunc(maps.Keys(c.entries), func(a, b Key) int {
		return strings.Compare(a.String(), b.String())
	})
	out := make([]*ClusterSetEntry, len(keys))
	for i, k := range keys {
		out[i] = c.entries[k]
	}
	return out
}

// Len returns the number of imported services.
func (c *ClusterSet) Len() int {
	if c == nil {
		return 0
	}
	return len(c.entries)
}

// buildClusterSet joins imports and their slices. Slices of a service that
// is not imported are kept out (the import is what makes a name exist).
func buildClusterSet(imports map[Key]*ServiceImport, mcsSlices map[Key]*EndpointSlice) *ClusterSet {
	cs := &ClusterSet{entries: make(map[Key]*ClusterSetEntry, len(imports))}
	for k, imp := range imports {
		cs.entries[k] = &ClusterSetEntry{ServiceImport: imp}
	}
	keys := slices.SortedFunc(maps.Keys(mcsSlices), func(a, b Key) int {
		if c := strings.Compare(mcsSlices[a].Cluster, mcsSlices[b].Cluster); c != 0 {
			return c
		}
		return strings.Compare(a.String(), b.String())
	})
	for _, k := range keys {
		sl := mcsSlices[k]
		e := cs.entries[Key{Namespace: sl.Namespace, Name: sl.Service}]
		if e == nil {
			continue
		}
		for i := range sl.Endpoints {
			e.Endpoints = append(e.Endpoints, ClusterEndpoint{Endpoint: &sl.Endpoints[i], Cluster: sl.Cluster, Ports: sl.Ports})
		}
	}
	return cs
}

// serviceImportObject is the API object as manifests and the API server
// write it (multicluster.x-k8s.io/v1alpha1).
type serviceImportObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Type                  string                        `json:"type,omitempty"`
		IPs                   []string                      `json:"ips,omitempty"`
		Ports                 []importPort                  `json:"ports,omitempty"`
		SessionAffinity       string                        `json:"sessionAffinity,omitempty"`
		SessionAffinityConfig *corev1.SessionAffinityConfig `json:"sessionAffinityConfig,omitempty"`
	} `json:"spec"`
	Status struct {
		Clusters []struct {
			Cluster string `json:"cluster"`
		} `json:"clusters,omitempty"`
	} `json:"status,omitempty"`
}

type importPort struct {
	Name        string `json:"name,omitempty"`
	Protocol    string `json:"protocol,omitempty"`
	AppProtocol string `json:"appProtocol,omitempty"`
	Port        int32  `json:"port"`
}

// ParseServiceImport decodes a ServiceImport from JSON (strict: unknown
// fields are errors) and converts it.
func ParseServiceImport(js []byte) (*ServiceImport, error) {
	var o serviceImportObject
	if err := yaml.UnmarshalStrict(js, &o); err != nil {
		return nil, fmt.Errorf("ServiceImport: %w", err)
	}
	return convertServiceImport(&o)
}

// DecodeServiceImport converts a ServiceImport already decoded into a
// generic map (the dynamic client's unstructured content).
func DecodeServiceImport(obj map[string]any) (*ServiceImport, error) {
	js, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("ServiceImport: %w", err)
	}
	return ParseServiceImport(js)
}

// DeepCopyObject implements runtime.Object (informer caches copy objects).
func (o *serviceImportObject) DeepCopyObject() runtime.Object {
	cp := *o
	o.ObjectMeta.DeepCopyInto(&cp.ObjectMeta)
	cp.Spec.IPs = slices.Clone(o.Spec.IPs)
	cp.Spec.Ports = slices.Clone(o.Spec.Ports)
	cp.Spec.SessionAffinityConfig = o.Spec.SessionAffinityConfig.DeepCopy()
	cp.Status.Clusters = slices.Clone(o.Status.Clusters)
	return &cp
}

// serviceImportList is the API's list of ServiceImports.
type serviceImportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []serviceImportObject `json:"items"`
}

// DeepCopyObject implements runtime.Object.
func (l *serviceImportList) DeepCopyObject() runtime.Object {
	cp := *l
	l.ListMeta.DeepCopyInto(&cp.ListMeta)
	cp.Items = make([]serviceImportObject, len(l.Items))
	for i := range l.Items {
		cp.Items[i] = *l.Items[i].DeepCopyObject().(*serviceImportObject)
	}
	return &cp
}

// MCSGroupVersion is the API group of ServiceImport.
var MCSGroupVersion = schema.GroupVersion{Group: "multicluster.x-k8s.io", Version: "v1alpha1"}

// addMCSToScheme registers ServiceImport and its list with a scheme.
func addMCSToScheme(s *runtime.Scheme) error {
	s.AddKnownTypeWithName(MCSGroupVersion.WithKind("ServiceImport"), &serviceImportObject{})
	s.AddKnownTypeWithName(MCSGroupVersion.WithKind("ServiceImportList"), &serviceImportList{})
	metav1.AddToGroupVersion(s, MCSGroupVersion)
	return nil
}

func convertServiceImport(o *serviceImportObject) (*ServiceImport, error) {
	if o.Name == "" {
		return nil, fmt.Errorf("serviceimport without metadata.name")
	}
	out := &ServiceImport{Key: Key{Namespace: nsOrDefault(o.Namespace), Name: o.Name}}
	// The names become DNS labels: refuse what would break the zone.
	for _, l := range []string{out.Name, out.Namespace} {
		if errs := validation.IsDNS1123Label(l); len(errs) > 0 {
			return nil, fmt.Errorf("serviceimport %s: %q is not a DNS label: %s", out.Key, l, strings.Join(errs, "; "))
		}
	}
	switch o.Spec.Type {
	case "ClusterSetIP":
		out.Type = ImportClusterSetIP
	case "Headless":
		out.Type = ImportHeadless
		if len(o.Spec.IPs) > 0 {
			return nil, fmt.Errorf("serviceimport %s: type Headless with spec.ips", out.Key)
		}
	default:
		return nil, fmt.Errorf("serviceimport %s: spec.type %q is not ClusterSetIP or Headless", out.Key, o.Spec.Type)
	}
	for _, ip := range o.Spec.IPs {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("serviceimport %s: ips %q: %w", out.Key, ip, err)
		}
		out.IPs = append(out.IPs, a.Unmap())
	}
	for _, p := range o.Spec.Ports {
		out.Ports = append(out.Ports, ServicePort{Name: p.Name, Protocol: protocol(corev1.Protocol(p.Protocol)), Port: p.Port})
	}
	return out, nil
}

// IsMCSSlice reports whether an EndpointSlice belongs to a ServiceImport.
func IsMCSSlice(labels map[string]string) bool { return labels[MCSServiceNameLabel] != "" }

// ConvertMCSEndpointSlice converts an EndpointSlice labelled with
// multicluster.kubernetes.io/service-name: the same conversion as any
// slice, with Service and Cluster taken from the MCS labels. A slice
// without the source-cluster label is an error (its endpoints could not be
// named under <clusterid>).
func ConvertMCSEndpointSlice(s *discoveryv1.EndpointSlice) (*EndpointSlice, error) {
	out, err := ConvertEndpointSlice(s)
	if err != nil {
		return nil, err
	}
	out.Service = s.Labels[MCSServiceNameLabel]
	out.Cluster = strings.ToLower(s.Labels[MCSSourceClusterLabel])
	if out.Cluster == "" {
		return nil, fmt.Errorf("endpointslice %s: label %s set without %s", out.Key, MCSServiceNameLabel, MCSSourceClusterLabel)
	}
	if errs := validation.IsDNS1123Label(out.Cluster); len(errs) > 0 {
		return nil, fmt.Errorf("endpointslice %s: %s %q is not a DNS label: %s", out.Key, MCSSourceClusterLabel, out.Cluster, strings.Join(errs, "; "))
	}
	for _, ep := range out.Endpoints {
		if ep.Hostname == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ep.Hostname); len(errs) > 0 {
			return nil, fmt.Errorf("endpointslice %s: hostname %q is not a DNS label: %s", out.Key, ep.Hostname, strings.Join(errs, "; "))
		}
	}
	return out, nil
}

// UpsertServiceImport adds or replaces an import. Call Flush (or Run) to
// publish.
func (s *Store) UpsertServiceImport(imp *ServiceImport) { upsertMCS(s, s.imports, imp.Key, imp) }

// DeleteServiceImport removes an import.
func (s *Store) DeleteServiceImport(k Key) { deleteMCS(s, s.imports, k) }

// UpsertMCSEndpointSlice adds or replaces a slice of an imported service.
func (s *Store) UpsertMCSEndpointSlice(sl *EndpointSlice) { upsertMCS(s, s.mcsSlices, sl.Key, sl) }

// DeleteMCSEndpointSlice removes a slice of an imported service.
func (s *Store) DeleteMCSEndpointSlice(k Key) { deleteMCS(s, s.mcsSlices, k) }

// upsertMCS and deleteMCS change one clusterset object under the store's
// lock; any clusterset change makes the next snapshot rebuild the
// clusterset (mcsChanged).
func upsertMCS[V any](s *Store, m map[Key]V, k Key, v V) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m[k] = v
	s.mcsChanged = true
	s.kickLocked()
}

func deleteMCS[V any](s *Store, m map[Key]V, k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := m[k]; ok {
		delete(m, k)
		s.mcsChanged = true
		s.kickLocked()
	}
}

// replaceMCSLocked makes the store hold exactly these imports and slices,
// marking the clusterset changed only when they differ (a change rebuilds
// the server's index whole).
func (s *Store) replaceMCSLocked(imports []*ServiceImport, sls []*EndpointSlice) {
	nextImp := make(map[Key]*ServiceImport, len(imports))
	for _, imp := range imports {
		nextImp[imp.Key] = imp
	}
	nextSl := make(map[Key]*EndpointSlice, len(sls))
	for _, sl := range sls {
		nextSl[sl.Key] = sl
	}
	if !maps.EqualFunc(s.imports, nextImp, equalImport) || !maps.EqualFunc(s.mcsSlices, nextSl, equalSlice) {
		s.mcsChanged = true
	}
	s.imports, s.mcsSlices = nextImp, nextSl
}
