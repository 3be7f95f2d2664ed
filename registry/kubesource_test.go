package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/clusterdns/clusterdns/internal/testbin"
	"github.com/clusterdns/clusterdns/internal/testkube"
)

// These tests run the KubeSource against client-go's fake clientset (no API
// server); test/kube runs it against a real one.

func kubeService(ns, name, clusterIP string, ports ...corev1.ServicePort) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP, Ports: ports},
	}
	if clusterIP != corev1.ClusterIPNone {
		s.Spec.ClusterIPs = []string{clusterIP}
	}
	return s
}

func kubeSlice(ns, name, svc string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1", Labels: map[string]string{ServiceNameLabel: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
		Endpoints:   eps,
	}
}

func kubeEndpoint(ip string, ready bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}
}

// startKube runs a KubeSource over client until the test ends.
func startKube(t *testing.T, client *fake.Clientset, opts KubeOptions) (*KubeSource, *Store) {
	t.Helper()
	store := NewStore(Options{})
	if opts.Logger == nil {
		opts.Logger = testLogger(t.Output())
	}
	src := NewKubeSource(testkube.New(client), store, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return 10 s after its context ended")
		}
	})
	return src, store
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func endpointAddrs(e *ServiceEntry, publishedOnly bool) []string {
	var out []string
	if e == nil {
		return nil
	}
	for i := range e.Endpoints {
		if !publishedOnly || e.Published(&e.Endpoints[i]) {
			out = append(out, e.Endpoints[i].Address.String())
		}
	}
	slices.Sort(out)
	return out
}

func TestKubeSourceFollowsTheAPI(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		kubeService("apps", "web", "10.96.0.20", corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}),
		kubeService("apps", "db", corev1.ClusterIPNone),
		kubeSlice("apps", "db-1", "db", kubeEndpoint("10.244.0.1", true), kubeEndpoint("10.244.0.2", true)),
	)
	src, store := startKube(t, client, KubeOptions{})
	eventually(t, "synced", src.Synced)
	snap := store.Snapshot()
	if snap == nil || !store.Synced() {
		t.Fatal("source synced but the store published nothing")
	}
	if e := snap.Service(Key{"apps", "web"}); e == nil || e.Kind != KindClusterIP || !slices.Equal(e.ClusterIPs, []netip.Addr{netip.MustParseAddr("10.96.0.20")}) {
		t.Fatalf("apps/web = %+v, want ClusterIP 10.96.0.20", e)
	}
	if got := endpointAddrs(snap.Service(Key{"apps", "db"}), true); !slices.Equal(got, []string{"10.244.0.1", "10.244.0.2"}) {
		t.Fatalf("apps/db endpoints = %v", got)
	}
	if !snap.HasNamespace("apps") {
		t.Error("namespace apps not declared")
	}

	// An endpoint turns not ready: published at once.
	sl := kubeSlice("apps", "db-1", "db", kubeEndpoint("10.244.0.1", true), kubeEndpoint("10.244.0.2", false))
	sl.ResourceVersion = "2"
	if _, err := client.DiscoveryV1().EndpointSlices("apps").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "not-ready endpoint unpublished", func() bool {
		return slices.Equal(endpointAddrs(store.Snapshot().Service(Key{"apps", "db"}), true), []string{"10.244.0.1"})
	})

	// A new ExternalName service, then the ClusterIP service goes.
	ext := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "search", ResourceVersion: "1"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "WWW.Example.Test."},
	}
	if _, err := client.CoreV1().Services("apps").Create(ctx, ext, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ExternalName service added", func() bool {
		e := store.Snapshot().Service(Key{"apps", "search"})
		return e != nil && e.Kind == KindExternalName && e.ExternalName == "www.example.test"
	})
	if err := client.CoreV1().Services("apps").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "service deleted", func() bool { return store.Snapshot().Service(Key{"apps", "web"}) == nil })

	// The slice goes: the headless service has no endpoints left.
	if err := client.DiscoveryV1().EndpointSlices("apps").Delete(ctx, "db-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "slice deleted", func() bool {
		e := store.Snapshot().Service(Key{"apps", "db"})
		return e != nil && len(e.Endpoints) == 0
	})
	// A namespace object goes; it still exists while it holds a service.
	if err := client.CoreV1().Namespaces().Delete(ctx, "apps", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := client.CoreV1().Services("apps").Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := client.CoreV1().Services("apps").Delete(ctx, "search", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "namespace gone", func() bool { return !store.Snapshot().HasNamespace("apps") })
}

func TestKubeSourceSkipsUpdatesThatChangeNothing(t *testing.T) {
	ctx := context.Background()
	svc := kubeService("apps", "web", "10.96.0.20")
	client := fake.NewClientset(svc)
	src, store := startKube(t, client, KubeOptions{})
	eventually(t, "synced", src.Synced)
	var mu sync.Mutex
	var published []*Snapshot
	store.Subscribe(func(s *Snapshot) {
		mu.Lock()
		published = append(published, s)
		mu.Unlock()
	})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(published)
	}

	// An annotation and a status condition: nothing DNS answers or the
	// node proxy routes changes. (A LoadBalancer ingress would: the node
	// proxy DNATs it.)
	upd := svc.DeepCopy()
	upd.ResourceVersion = "2"
	upd.Annotations = map[string]string{"note": "changed"}
	upd.Status.Conditions = []metav1.Condition{{Type: "Example", Status: metav1.ConditionTrue, Reason: "Test", LastTransitionTime: metav1.Now()}}
	if _, err := client.CoreV1().Services("apps").Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Give the event time to arrive (a slow machine only makes this test
	// weaker, never failing).
	time.Sleep(300 * time.Millisecond)
	if n := count(); n != 1 {
		t.Errorf("%d snapshots published after an update that changes nothing, want none", n-1)
	}
	// Then a real change.
	upd = upd.DeepCopy()
	upd.ResourceVersion = "3"
	upd.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80}}
	if _, err := client.CoreV1().Services("apps").Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "port added", func() bool { return len(store.Snapshot().Service(Key{"apps", "web"}).Ports) == 1 })
}

func TestKubeSourceNamespacesOption(t *testing.T) {
	client := fake.NewClientset(
		kubeService("a", "one", "10.96.0.1"),
		kubeService("b", "two", "10.96.0.2"),
	)
	src, store := startKube(t, client, KubeOptions{Namespaces: []string{"a"}})
	eventually(t, "synced", src.Synced)
	snap := store.Snapshot()
	if snap.Service(Key{"a", "one"}) == nil {
		t.Error("a/one not served")
	}
	if snap.Service(Key{"b", "two"}) != nil {
		t.Error("b/two served although only namespace a is")
	}
}

func TestKubeSourcePods(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "p", ResourceVersion: "1"},
		Spec:       corev1.PodSpec{Hostname: "Web-0", Subdomain: "web", Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		Status:     corev1.PodStatus{PodIP: "10.244.0.9", PodIPs: []corev1.PodIP{{IP: "10.244.0.9"}}},
	}
	client := fake.NewClientset(pod)
	t.Run("off", func(t *testing.T) {
		src, store := startKube(t, client, KubeOptions{})
		eventually(t, "synced", src.Synced)
		if got := store.Snapshot().PodsByIP(netip.MustParseAddr("10.244.0.9")); len(got) != 0 {
			t.Errorf("pods watched without KubeOptions.Pods: %v", got)
		}
	})
	t.Run("on", func(t *testing.T) {
		src, store := startKube(t, client, KubeOptions{Pods: true})
		eventually(t, "synced", src.Synced)
		got := store.Snapshot().PodsByIP(netip.MustParseAddr("10.244.0.9"))
		if len(got) != 1 || got[0].Key != (Key{"apps", "p"}) || got[0].Hostname != "web-0" || got[0].Subdomain != "web" {
			t.Errorf("PodsByIP = %+v", got)
		}
	})
}

func TestKubeSourceSyncTimeout(t *testing.T) {
	client := fake.NewClientset(kubeService("apps", "web", "10.96.0.20"))
	// Services can never be listed: the first full view never comes.
	client.PrependReactor("list", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("injected: services unavailable")
	})
	var logs testbin.LogBuffer
	src, store := startKube(t, client, KubeOptions{SyncTimeout: 300 * time.Millisecond, Logger: testLogger(&logs)})
	if store.Synced() {
		t.Fatal("store synced before the timeout")
	}
	eventually(t, "store marked synced by the timeout", store.Synced)
	eventually(t, "partial view published", func() bool { return store.Snapshot() != nil })
	if src.Synced() {
		t.Error("source reports synced although services never listed")
	}
	eventually(t, "the log says so", func() bool { return strings.Contains(logs.String(), "serving the partial view") })
}

// captureInformer is an informer that is never run: it keeps the handler
// registered through client-go's typed adapter, and the transform, so that
// tests can deliver events, tombstones included, the way the informer does.
type captureInformer struct {
	cache.SharedIndexInformer // nil: any other method panics
	handler                   cache.ResourceEventHandler
	transform                 cache.TransformFunc
}

func (c *captureInformer) SetTransform(f cache.TransformFunc) error {
	c.transform = f
	return nil
}
func (c *captureInformer) SetWatchErrorHandlerWithContext(cache.WatchErrorHandlerWithContext) error {
	return nil
}
func (c *captureInformer) AddEventHandlerWithOptions(h cache.ResourceEventHandler, _ cache.HandlerOptions) (cache.ResourceEventHandlerRegistration, error) {
	c.handler = h
	return syncedRegistration{}, nil
}

// cached returns what the informer would cache of obj.
func (c *captureInformer) cached(t *testing.T, obj any) any {
	t.Helper()
	out, err := c.transform(obj)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type syncedRegistration struct{}

func (syncedRegistration) HasSynced() bool                     { return true }
func (syncedRegistration) HasSyncedChecker() cache.DoneChecker { return nil }

func TestKubeSourceTombstones(t *testing.T) {
	store := NewStore(Options{})
	store.MarkSynced()
	src := NewKubeSource(testkube.New(fake.NewClientset()), store, KubeOptions{Logger: testLogger(t.Output())})
	svcInf := &captureInformer{}
	if _, err := watchKind(src, "services", svcInf, ConvertService, equalService, store.UpsertService, store.DeleteService); err != nil {
		t.Fatal(err)
	}
	slInf := &captureInformer{}
	if _, err := watchKind(src, "slices", slInf, newInterner().convertSlice, equalSlice, store.UpsertEndpointSlice, store.DeleteEndpointSlice); err != nil {
		t.Fatal(err)
	}
	svcInf.handler.OnAdd(svcInf.cached(t, kubeService("apps", "db", corev1.ClusterIPNone)), true)
	svcInf.handler.OnAdd(svcInf.cached(t, kubeService("apps", "web", "10.96.0.20")), true)
	slInf.handler.OnAdd(slInf.cached(t, kubeSlice("apps", "db-1", "db", kubeEndpoint("10.244.0.1", true))), true)
	if got := endpointAddrs(store.Flush().Service(Key{"apps", "db"}), true); len(got) != 1 {
		t.Fatalf("endpoints = %v", got)
	}
	// A deletion noticed on relist, with the last known object...
	slInf.handler.OnDelete(cache.DeletedFinalStateUnknown{Key: "apps/db-1", Obj: slInf.cached(t, kubeSlice("apps", "db-1", "db"))})
	// ... and without any.
	svcInf.handler.OnDelete(cache.DeletedFinalStateUnknown{Key: "apps/web"})
	snap := store.Flush()
	if e := snap.Service(Key{"apps", "db"}); e == nil || len(e.Endpoints) != 0 {
		t.Errorf("slice tombstone not applied: %+v", e)
	}
	if snap.Service(Key{"apps", "web"}) != nil {
		t.Error("service tombstone without object not applied")
	}

	// An object that does not convert is not served (and does not stay
	// served with its previous contents).
	bad := kubeService("apps", "db", "not-an-ip")
	bad.ResourceVersion = "2"
	svcInf.handler.OnUpdate(svcInf.cached(t, kubeService("apps", "db", corev1.ClusterIPNone)), svcInf.cached(t, bad))
	if store.Flush().Service(Key{"apps", "db"}) != nil {
		t.Error("a service that does not convert is still served")
	}
}

// TestKubeTransformKeepsTheModel checks, on every object of the example
// cluster dressed up with the fields real API objects carry, that the
// informer transforms keep exactly the conversion of the object and its
// name, namespace and resourceVersion, nothing else, and are idempotent.
func TestKubeTransformKeepsTheModel(t *testing.T) {
	data, err := os.ReadFile("../zones/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dress := func(m *metav1.ObjectMeta) {
		m.ResourceVersion = "42"
		m.UID = "0e7b5c3c-0000-4000-8000-000000000000"
		m.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 1000)}
		m.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}
		m.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "rs"}}
	}
	in := newInterner()
	n := 0
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var tm struct{ Kind string }
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatal(err)
		}
		n++
		switch tm.Kind {
		case "Service":
			var o corev1.Service
			mustUnmarshal(t, doc, &o)
			dress(&o.ObjectMeta)
			checkTransform(t, &o, ConvertService, ConvertService)
		case "EndpointSlice":
			var o discoveryv1.EndpointSlice
			mustUnmarshal(t, doc, &o)
			if IsMCSSlice(o.Labels) {
				continue // not watched as a slice of a local service (mcs.go)
			}
			dress(&o.ObjectMeta)
			checkTransform(t, &o, in.convertSlice, ConvertEndpointSlice)
		case "Pod":
			var o corev1.Pod
			mustUnmarshal(t, doc, &o)
			dress(&o.ObjectMeta)
			o.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", Ready: true}}
			checkTransform(t, &o, ConvertPod, ConvertPod)
		case "Namespace":
			var o corev1.Namespace
			mustUnmarshal(t, doc, &o)
			dress(&o.ObjectMeta)
			checkTransform(t, &o, convertNamespace, convertNamespace)
		default:
			n--
		}
	}
	if n < 10 {
		t.Fatalf("only %d objects found in the example cluster", n)
	}
}

func mustUnmarshal(t *testing.T, doc []byte, into any) {
	t.Helper()
	if err := yaml.Unmarshal(doc, into); err != nil {
		t.Fatal(err)
	}
}

// checkTransform runs the informer transform built on convert over o and
// compares what it keeps with reference(o).
func checkTransform[T apiObject, M any](t *testing.T, o T, convert, reference func(T) (M, error)) {
	t.Helper()
	want, err := reference(o)
	if err != nil {
		t.Fatal(err)
	}
	tr := cacheTransform(convert)
	out, err := tr(o)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := out.(*cached[M])
	if !ok {
		t.Fatalf("transform of %T gave %T", o, out)
	}
	if c.err != nil || !reflect.DeepEqual(c.model, want) {
		t.Errorf("%s: cached model differs from the conversion:\n got %+v (%v)\nwant %+v", o.GetName(), c.model, c.err, want)
	}
	wantMeta := slimMeta{name: o.GetName(), namespace: o.GetNamespace(), resourceVersion: "42"}
	if c.slimMeta != wantMeta {
		t.Errorf("%s: cached metadata %+v, want %+v", o.GetName(), c.slimMeta, wantMeta)
	}
	if again, err := tr(c); err != nil || again != any(c) {
		t.Errorf("%s: transform not idempotent: %v %v", o.GetName(), again, err)
	}
}

func testLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
