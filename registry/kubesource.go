package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// KubeOptions configure a KubeSource.
type KubeOptions struct {
	// Namespaces limits the source to these namespaces (one set of
	// informers each); empty watches the whole cluster.
	Namespaces []string
	// Pods also watches pods that are not finished (status.phase other
	// than Succeeded and Failed): `pods: verified` and autopath need them.
	Pods bool
	// SyncTimeout bounds the wait for the first full view: when it runs
	// out the store is marked synced anyway, so that clusterdns answers
	// from what it has instead of SERVFAIL, and the log says so. Synced
	// stays false until the real sync. Zero waits for ever.
	SyncTimeout time.Duration
	// ClusterSet also watches ServiceImports (multicluster.x-k8s.io) and
	// the EndpointSlices labelled multicluster.kubernetes.io/service-name,
	// for the clusterset zone; a missing CRD is logged once.
	ClusterSet bool
	// Logger receives the source's logs and client-go's (through a logr
	// logger in the context); nil means slog.Default().
	Logger *slog.Logger
}

// KubeSource feeds a Store from the Kubernetes API: client-go informers on
// Services, EndpointSlices (discovery.k8s.io/v1, those labelled
// kubernetes.io/service-name), Namespaces and, with KubeOptions.Pods, Pods.
// Every object is converted by the same functions as the file source
// (ConvertService, ConvertEndpointSlice, ConvertPod) as it arrives, in the
// informers' transforms, so that the informers' caches hold the slim model
// (shared with the store) rather than API objects; each event is then
// written into the store, whose Run loop publishes it at once.
//
// When the API server goes away the informers' reflectors retry with
// backoff and resume their watches (relisting when needed); the store keeps
// the last published snapshot meanwhile.
type KubeSource struct {
	client KubeAPI
	store  *Store
	opts   KubeOptions
	log    *slog.Logger
	api    apiState
	synced atomic.Bool
	ran    atomic.Bool
	// crdMissing is set while the ServiceImport CRD is not installed
	// (kubemcs.go).
	crdMissing atomic.Bool
}

// NewKubeSource returns a source that will feed store from client (see
// NewKubeAPI) once Run is called. It does not contact the API server.
func NewKubeSource(client KubeAPI, store *Store, opts KubeOptions) *KubeSource {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("source", "kubernetes")
	return &KubeSource{client: client, store: store, opts: opts, log: log, api: apiState{log: log}}
}

// Synced reports whether every informer has delivered its first full list
// and that view has been published by the store. It stays false when the
// store was marked synced only because SyncTimeout ran out. It never blocks;
// the /ready endpoint calls it.
func (k *KubeSource) Synced() bool { return k.synced.Load() }

// informer is one started watch: what it is for the logs, whether its
// initial list has arrived (listed: in the informer's cache, its events
// queued for the handler) and whether its handler has processed it.
type informer struct {
	what   string
	run    func(context.Context)
	listed func() bool
	synced func() bool
}

// Run starts the informers and the store's publishing loop (Store.Run),
// marks the store synced after the first full list (or after SyncTimeout),
// and blocks until ctx ends; it then stops the informers and returns nil.
// It fails at once when the informers cannot be set up, and when called a
// second time.
func (k *KubeSource) Run(ctx context.Context) error {
	if !k.ran.CompareAndSwap(false, true) {
		return errors.New("kubernetes source: Run called twice")
	}
	infs, err := k.informers()
	if err != nil {
		return fmt.Errorf("kubernetes source: %w", err)
	}
	// client-go logs through the logger in the context (contextual logging).
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(k.log.Handler()))
	var wg sync.WaitGroup
	wg.Go(func() { k.store.Run(ctx) })
	for _, inf := range infs {
		wg.Go(func() { inf.run(ctx) })
	}
	k.log.Info("watching the API server", "namespaces", k.namespacesForLog(), "pods", k.opts.Pods,
		"sync_timeout", k.opts.SyncTimeout)
	k.waitSynced(ctx, infs)
	<-ctx.Done()
	wg.Wait()
	return nil
}

func (k *KubeSource) namespacesForLog() string {
	if len(k.opts.Namespaces) == 0 {
		return "(all)"
	}
	return strings.Join(k.opts.Namespaces, ",")
}

// waitSynced waits for every informer's handler to have seen its initial
// list, marking the store synced early when SyncTimeout runs out. It
// returns when synced or when ctx ends. It logs (debug, took= since it
// started) when each informer's initial list has arrived and when all
// have: what comes after is clusterdns' own start-up work (the handlers,
// the first snapshot and index), which the start → ready benchmark
// measures from there.
func (k *KubeSource) waitSynced(ctx context.Context, infs []informer) {
	start := time.Now()
	var timeout <-chan time.Time
	if k.opts.SyncTimeout > 0 {
		t := time.NewTimer(k.opts.SyncTimeout)
		defer t.Stop()
		timeout = t.C
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	listed := make([]bool, len(infs))
	allListed := false
	for {
		var pending []string
		for i, inf := range infs {
			if !listed[i] && inf.listed() {
				listed[i] = true
				k.log.Debug("initial list received", "watch", inf.what, "took", time.Since(start))
			}
			if !inf.synced() {
				pending = append(pending, inf.what)
			}
		}
		if !allListed && !slices.Contains(listed, false) {
			allListed = true
			k.log.Debug("initial lists received", "took", time.Since(start))
		}
		if len(pending) == 0 {
			k.store.MarkSynced()
			snap := k.store.Flush()
			k.synced.Store(true)
			k.log.Info("synced with the API server", "took", time.Since(start).Round(time.Millisecond),
				"services", snap.ServiceCount(), "serial", snap.Serial)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-timeout:
			timeout = nil
			k.store.MarkSynced()
			snap := k.store.Flush()
			k.log.Warn("not synced with the API server within sync_timeout: serving the partial view; names not loaded yet answer NXDOMAIN",
				"sync_timeout", k.opts.SyncTimeout, "waiting_for", pending, "services", snap.ServiceCount())
		case <-tick.C:
		}
	}
}

// informers builds the informers, their transforms and handlers.
func (k *KubeSource) informers() ([]informer, error) {
	namespaces := slices.Clone(k.opts.Namespaces)
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	shared := newInterner()
	var out []informer
	add := func(inf informer, err error) error {
		if err != nil {
			return err
		}
		out = append(out, inf)
		return nil
	}
	for _, ns := range namespaces {
		where := " in " + ns
		if ns == metav1.NamespaceAll {
			where = ""
		}
		// Only slices that belong to a service; one that loses its label
		// leaves the watch as a deletion.
		withServiceName := func(o *metav1.ListOptions) { o.LabelSelector = discoveryv1.LabelServiceName }
		// Finished pods may have given their IP to another pod; they leave
		// the watch as deletions.
		unfinished := func(o *metav1.ListOptions) {
			o.FieldSelector = fields.AndSelectors(
				fields.OneTermNotEqualSelector("status.phase", string(corev1.PodSucceeded)),
				fields.OneTermNotEqualSelector("status.phase", string(corev1.PodFailed)),
			).String()
		}
		// One namespace object by name, or all of them.
		oneNamespace := func(o *metav1.ListOptions) {
			if ns != metav1.NamespaceAll {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", ns).String()
			}
		}
		svcs, sls, nss, pods := "services"+where, "endpointslices"+where, "namespaces", "pods"+where
		if ns != metav1.NamespaceAll {
			nss = "namespace " + ns
		}
		err := errors.Join(
			add(watchKind(k, svcs, k.newInformer(svcs, ResourceServices, ns, &corev1.Service{}, nil),
				shared.convertService, equalService,
				k.store.UpsertService, k.store.DeleteService)),
			add(watchKind(k, sls, k.newInformer(sls, ResourceEndpointSlices, ns, &discoveryv1.EndpointSlice{}, withServiceName),
				shared.convertSlice, equalSlice,
				k.store.UpsertEndpointSlice, k.store.DeleteEndpointSlice)),
			add(watchKind(k, nss, k.newInformer(nss, ResourceNamespaces, "", &corev1.Namespace{}, oneNamespace),
				convertNamespace, func(a, b string) bool { return a == b },
				k.store.UpsertNamespace, func(key Key) { k.store.DeleteNamespace(key.Name) })),
		)
		if k.opts.ClusterSet {
			mcs, mcsErr := k.mcsInformers(ns, where, shared)
			err = errors.Join(err, mcsErr)
			out = append(out, mcs...)
		}
		if k.opts.Pods {
			err = errors.Join(err, add(watchKind(k, pods, k.newInformer(pods, ResourcePods, ns, &corev1.Pod{}, unfinished),
				ConvertPod, equalPod,
				k.store.UpsertPod, k.store.DeletePod)))
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// newInformer returns an informer of resource in namespace ("": all),
// whose objects look like example, with tweak applied to the options of its
// requests. It reports the outcome of every request to the source's API
// state so that losing and regaining the API server is logged once each.
func (k *KubeSource) newInformer(what, resource, namespace string, example runtime.Object, tweak func(*metav1.ListOptions)) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			if tweak != nil {
				tweak(&o)
			}
			obj, err := k.client.List(ctx, resource, namespace, o)
			if resource != ResourceServiceImports || !k.noteImports(ctx, err) {
				k.api.note(ctx, what, err)
			}
			return obj, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			if tweak != nil {
				tweak(&o)
			}
			w, err := k.client.Watch(ctx, resource, namespace, o)
			if resource != ResourceServiceImports || !k.noteImports(ctx, err) {
				k.api.note(ctx, what, err)
			}
			return w, err
		},
	}
	return cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, k.client), example,
		cache.SharedIndexInformerOptions{})
}

// apiState follows whether requests reach the API server, to log the loss
// and the return of the connection once each (client-go's reflectors retry
// quietly, with backoff up to 30 s).
type apiState struct {
	log  *slog.Logger
	mu   sync.Mutex
	down time.Time // zero while requests succeed
}

// note records the outcome of one list or watch request. Errors from a
// server that answered (a watch too old to resume, a refusal) do not mean
// the server is gone; a refusal is logged as it comes.
func (a *apiState) note(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return // shutting down
	}
	var status apierrors.APIStatus
	switch {
	case err == nil:
		a.mu.Lock()
		down := a.down
		a.down = time.Time{}
		a.mu.Unlock()
		if !down.IsZero() {
			a.log.Info("API server reachable again: watches resume", "watch", what, "unreachable_for", time.Since(down).Round(time.Millisecond))
		}
	case errors.As(err, &status):
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			a.log.Warn("API server refused a watch, retrying with backoff", "watch", what, "err", err)
		}
	default:
		a.mu.Lock()
		first := a.down.IsZero()
		if first {
			a.down = time.Now()
		}
		a.mu.Unlock()
		if first {
			a.log.Warn("API server unreachable: serving the last known cluster, retrying with backoff", "watch", what, "err", err)
		}
	}
}

// cached is what an informer keeps of an object: its name, namespace and
// resourceVersion (what the informer itself needs) and its conversion to
// the model, or the conversion's error. The informer's transform converts
// each API object as it arrives, so the informer's cache holds the very
// model values the Store holds (shared, never modified) instead of a second,
// larger copy of the API objects; and an update is converted once.
type cached[M any] struct {
	slimMeta
	model M
	err   error
}

// GetObjectKind implements runtime.Object: cached values have no kind.
func (c *cached[M]) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object. The model is immutable, so a
// shallow copy is a deep one.
func (c *cached[M]) DeepCopyObject() runtime.Object {
	cp := *c
	return &cp
}

// cacheTransform returns the informer transform of API objects of type T:
// each becomes a *cached[M] by convert. It is idempotent (a cached value
// passes through), as client-go requires.
func cacheTransform[T apiObject, M any](convert func(T) (M, error)) cache.TransformFunc {
	return func(obj any) (any, error) {
		o, ok := obj.(T)
		if !ok {
			return obj, nil // already converted
		}
		m, err := convert(o)
		return &cached[M]{
			slimMeta: slimMeta{name: o.GetName(), namespace: o.GetNamespace(), resourceVersion: o.GetResourceVersion()},
			model:    m,
			err:      err,
		}, nil
	}
}

// apiObject is what watchKind needs of an API type.
type apiObject interface {
	cache.Object
	GetResourceVersion() string
}

// watchKind wires one informer of API objects of type T: convert is the
// model conversion (run by the informer's transform), same tells whether
// two converted values are equal (an update that changes nothing the model
// holds is dropped), upsert and remove write to the store. remove gets the
// key of the deleted object (Name only for cluster-scoped objects),
// tombstones included. Handlers run on the informer's goroutine.
func watchKind[T apiObject, M any](k *KubeSource, what string, inf cache.SharedIndexInformer,
	convert func(T) (M, error), same func(a, b M) bool,
	upsert func(M), remove func(Key)) (informer, error) {
	if err := inf.SetTransform(cacheTransform(convert)); err != nil {
		return informer{}, fmt.Errorf("%s: transform: %w", what, err)
	}
	if err := inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, _ *cache.Reflector, err error) {
		if ctx.Err() == nil {
			k.log.Debug("watch ended, restarting", "watch", what, "err", err)
		}
	}); err != nil {
		return informer{}, fmt.Errorf("%s: watch error handler: %w", what, err)
	}
	keyOf := func(namespace, name string) Key {
		if namespace == "" {
			return Key{Name: name} // cluster-scoped (namespaces)
		}
		return Key{Namespace: namespace, Name: name}
	}
	apply := func(c *cached[M]) {
		if c.err != nil {
			// The API server validates what the conversions check, so this
			// is not expected; serve nothing rather than stale data.
			k.log.Error("object not served", "watch", what, "object", c.namespace+"/"+c.name, "err", c.err)
			remove(keyOf(c.namespace, c.name))
			return
		}
		upsert(c.model)
	}
	typed := cache.NewTypedSharedIndexInformer[*cached[M]](inf)
	reg, err := typed.AddTypedEventHandler(cache.TypedResourceEventHandlerFuncs[*cached[M]]{
		AddFunc: apply,
		UpdateFunc: func(old, cur *cached[M]) {
			if old.resourceVersion == cur.resourceVersion && old.resourceVersion != "" {
				return // a relist that found the object unchanged
			}
			if old.err == nil && cur.err == nil && same(old.model, cur.model) {
				return // only fields the model does not hold changed
			}
			apply(cur)
		},
		DeleteFunc: func(d cache.DeletedObject[*cached[M]]) {
			n := d.GetObjectName()
			remove(keyOf(n.Namespace, n.Name))
		},
	})
	if err != nil {
		return informer{}, fmt.Errorf("%s: event handler: %w", what, err)
	}
	return informer{what: what, run: inf.RunWithContext, listed: inf.HasSynced, synced: reg.HasSynced}, nil
}

// convertLabelledSlice converts a slice; the label selector of the watch
// guarantees its service-name label.
func convertLabelledSlice(s *discoveryv1.EndpointSlice) (*EndpointSlice, error) {
	if s.Labels[ServiceNameLabel] == "" {
		return nil, fmt.Errorf("endpointslice %s/%s: no label %s", s.Namespace, s.Name, ServiceNameLabel)
	}
	return ConvertEndpointSlice(s)
}

func convertNamespace(n *corev1.Namespace) (string, error) { return n.Name, nil }
