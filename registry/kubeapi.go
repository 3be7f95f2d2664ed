package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// The resources of KubeAPI, by their plural names in the API.
const (
	ResourceServices       = "services"       // core/v1
	ResourceEndpointSlices = "endpointslices" // discovery.k8s.io/v1
	ResourceNamespaces     = "namespaces"     // core/v1, cluster-scoped
	ResourcePods           = "pods"           // core/v1
	ResourceServiceImports = "serviceimports" // multicluster.x-k8s.io/v1alpha1 (a CRD)
)

// KubeAPI lists and watches the resources the Kubernetes source reads
// (ResourceServices, ...): it is all the source asks of the API server.
// NewKubeAPI implements it over REST; tests adapt a clientset
// (internal/testkube). The source's informers call List and
// Watch from their own goroutines; both block on the network until ctx
// ends. namespace "" means every namespace (and is the only value for
// Namespaces). List returns the typed list (*corev1.ServiceList, ...).
type KubeAPI interface {
	List(ctx context.Context, resource string, namespace string, opts metav1.ListOptions) (runtime.Object, error)
	Watch(ctx context.Context, resource string, namespace string, opts metav1.ListOptions) (watch.Interface, error)
}

// restAPI is KubeAPI over two REST clients, core/v1 and
// discovery.k8s.io/v1, whose scheme knows those two groups only. The
// generated clientset would link and initialise every API group of
// Kubernetes, which costs the process about 8 MiB of resident memory for
// types it never reads.
type restAPI struct {
	kinds  map[string]kubeKind // by resource name
	params runtime.ParameterCodec
}

// kubeKind is how restAPI reads one resource: through which client, in a
// namespace or not, into which list type.
type kubeKind struct {
	client     rest.Interface
	namespaced bool
	newList    func() runtime.Object
}

// NewKubeAPI returns the KubeAPI of the API server rc points at (see
// KubeRESTConfig). It does not contact the server.
func NewKubeAPI(rc *rest.Config) (KubeAPI, error) {
	scheme := runtime.NewScheme()
	if err := errors.Join(corev1.AddToScheme(scheme), discoveryv1.AddToScheme(scheme), addMCSToScheme(scheme)); err != nil {
		return nil, fmt.Errorf("Kubernetes API scheme: %w", err)
	}
	// The unversioned options (ListOptions, ...) sent as query parameters.
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	codecs := serializer.NewCodecFactory(scheme)
	client := func(gv schema.GroupVersion, apiPath string) (rest.Interface, error) {
		c := rest.CopyConfig(rc)
		c.GroupVersion, c.APIPath = &gv, apiPath
		c.NegotiatedSerializer = codecs.WithoutConversion()
		if c.UserAgent == "" {
			c.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		rc, err := rest.RESTClientFor(c)
		if err != nil {
			return nil, fmt.Errorf("Kubernetes client for %s: %w", gv, err)
		}
		return rc, nil
	}
	core, err := client(corev1.SchemeGroupVersion, "/api")
	if err != nil {
		return nil, err
	}
	disc, err := client(discoveryv1.SchemeGroupVersion, "/apis")
	if err != nil {
		return nil, err
	}
	mcs, err := client(MCSGroupVersion, "/apis")
	if err != nil {
		return nil, err
	}
	return &restAPI{params: runtime.NewParameterCodec(scheme), kinds: map[string]kubeKind{
		ResourceServiceImports: {mcs, true, func() runtime.Object { return &serviceImportList{} }},
		ResourceServices:       {core, true, func() runtime.Object { return &corev1.ServiceList{} }},
		ResourceEndpointSlices: {disc, true, func() runtime.Object { return &discoveryv1.EndpointSliceList{} }},
		ResourceNamespaces:     {core, false, func() runtime.Object { return &corev1.NamespaceList{} }},
		ResourcePods:           {core, true, func() runtime.Object { return &corev1.PodList{} }},
	}}, nil
}

// request starts a GET of resource in namespace with opts, and returns the
// resource's kind.
func (a *restAPI) request(resource, namespace string, opts *metav1.ListOptions) (*rest.Request, kubeKind, error) {
	k, ok := a.kinds[resource]
	if !ok {
		return nil, k, fmt.Errorf("unknown resource %q", resource)
	}
	r := k.client.Get().Resource(resource)
	if k.namespaced {
		r = r.Namespace(namespace)
	}
	return r.VersionedParams(opts, a.params).Timeout(timeoutOf(opts)), k, nil
}

// List implements KubeAPI.
func (a *restAPI) List(ctx context.Context, resource, namespace string, opts metav1.ListOptions) (runtime.Object, error) {
	req, k, err := a.request(resource, namespace, &opts)
	if err != nil {
		return nil, err
	}
	list := k.newList()
	if err := req.Do(ctx).Into(list); err != nil {
		return nil, err
	}
	return list, nil
}

// Watch implements KubeAPI.
func (a *restAPI) Watch(ctx context.Context, resource, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	req, _, err := a.request(resource, namespace, &opts)
	if err != nil {
		return nil, err
	}
	return req.Watch(ctx)
}

// timeoutOf is the client-side bound of a request whose options ask the
// server for one (0: none), as the generated clients set it.
func timeoutOf(opts *metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds == nil {
		return 0
	}
	return time.Duration(*opts.TimeoutSeconds) * time.Second
}
