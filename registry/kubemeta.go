package registry

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// slimMeta is the metadata an informer's cache keeps of an object: name,
// namespace and resourceVersion, all the informer reads. It implements
// metav1.Object in 48 bytes where metav1.ObjectMeta takes 232; the other
// fields read as empty and writes to them are dropped (nothing in the
// source or in client-go's informer writes them).
type slimMeta struct {
	name, namespace, resourceVersion string
}

var _ metav1.Object = (*slimMeta)(nil)

func (m *slimMeta) GetNamespace() string                          { return m.namespace }
func (m *slimMeta) SetNamespace(namespace string)                 { m.namespace = namespace }
func (m *slimMeta) GetName() string                               { return m.name }
func (m *slimMeta) SetName(name string)                           { m.name = name }
func (m *slimMeta) GetResourceVersion() string                    { return m.resourceVersion }
func (m *slimMeta) SetResourceVersion(version string)             { m.resourceVersion = version }
func (m *slimMeta) GetGenerateName() string                       { return "" }
func (m *slimMeta) SetGenerateName(string)                        {}
func (m *slimMeta) GetUID() types.UID                             { return "" }
func (m *slimMeta) SetUID(types.UID)                              {}
func (m *slimMeta) GetGeneration() int64                          { return 0 }
func (m *slimMeta) SetGeneration(int64)                           {}
func (m *slimMeta) GetSelfLink() string                           { return "" }
func (m *slimMeta) SetSelfLink(string)                            {}
func (m *slimMeta) GetCreationTimestamp() metav1.Time             { return metav1.Time{} }
func (m *slimMeta) SetCreationTimestamp(metav1.Time)              {}
func (m *slimMeta) GetDeletionTimestamp() *metav1.Time            { return nil }
func (m *slimMeta) SetDeletionTimestamp(*metav1.Time)             {}
func (m *slimMeta) GetDeletionGracePeriodSeconds() *int64         { return nil }
func (m *slimMeta) SetDeletionGracePeriodSeconds(*int64)          {}
func (m *slimMeta) GetLabels() map[string]string                  { return nil }
func (m *slimMeta) SetLabels(map[string]string)                   {}
func (m *slimMeta) GetAnnotations() map[string]string             { return nil }
func (m *slimMeta) SetAnnotations(map[string]string)              {}
func (m *slimMeta) GetFinalizers() []string                       { return nil }
func (m *slimMeta) SetFinalizers([]string)                        {}
func (m *slimMeta) GetOwnerReferences() []metav1.OwnerReference   { return nil }
func (m *slimMeta) SetOwnerReferences([]metav1.OwnerReference)    {}
func (m *slimMeta) GetManagedFields() []metav1.ManagedFieldsEntry { return nil }
func (m *slimMeta) SetManagedFields([]metav1.ManagedFieldsEntry)  {}
