// Package testkube adapts a client-go clientset (the fake one, or a real
// one for benchmarks that compare with client-go) to registry.KubeAPI, for
// tests. The binaries do not link it: they use registry.NewKubeAPI, which
// does not link every API group.
package testkube

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// API is registry.KubeAPI over a clientset. Its methods block as the
// clientset's do.
type API struct{ cs kubernetes.Interface }

// New returns the API of cs.
func New(cs kubernetes.Interface) *API { return &API{cs: cs} }

// List implements registry.KubeAPI.
func (a *API) List(ctx context.Context, resource, namespace string, o metav1.ListOptions) (runtime.Object, error) {
	switch resource {
	case "services":
		return a.cs.CoreV1().Services(namespace).List(ctx, o)
	case "endpointslices":
		return a.cs.DiscoveryV1().EndpointSlices(namespace).List(ctx, o)
	case "namespaces":
		return a.cs.CoreV1().Namespaces().List(ctx, o)
	case "pods":
		return a.cs.CoreV1().Pods(namespace).List(ctx, o)
	}
	return nil, fmt.Errorf("testkube: unknown resource %q", resource)
}

// Watch implements registry.KubeAPI.
func (a *API) Watch(ctx context.Context, resource, namespace string, o metav1.ListOptions) (watch.Interface, error) {
	switch resource {
	case "services":
		return a.cs.CoreV1().Services(namespace).Watch(ctx, o)
	case "endpointslices":
		return a.cs.DiscoveryV1().EndpointSlices(namespace).Watch(ctx, o)
	case "namespaces":
		return a.cs.CoreV1().Namespaces().Watch(ctx, o)
	case "pods":
		return a.cs.CoreV1().Pods(namespace).Watch(ctx, o)
	}
	return nil, fmt.Errorf("testkube: unknown resource %q", resource)
}

// IsWatchListSemanticsUnSupported passes on what the clientset says (the
// fake one cannot stream initial lists), for client-go's informers.
func (a *API) IsWatchListSemanticsUnSupported() bool {
	u, ok := a.cs.(interface{ IsWatchListSemanticsUnSupported() bool })
	return ok && u.IsWatchListSemanticsUnSupported()
}
