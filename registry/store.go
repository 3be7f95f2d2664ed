package registry

import (
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Options tune how a Store builds snapshots.
type Options struct {
	// EndpointPodNames names endpoints without a hostname after their pod
	// (CoreDNS endpoint_pod_names) instead of their dashed address.
	EndpointPodNames bool
	// NoDNSLabels leaves MergedEndpoint.DNSName empty: for consumers that
	// do not answer DNS (the node proxy), which then do not pay for a
	// generated label per endpoint.
	NoDNSLabels bool
	// Logger receives build logs; nil means slog.Default().
	Logger *slog.Logger
}

// Store is the one writer-side owner of the cluster model. Sources call its
// mutation methods (any goroutine; they take a mutex and never block on
// readers), then Flush (or let Run flush) to publish a new Snapshot.
// Readers call Snapshot, which is a single atomic load.
type Store struct {
	opts Options
	log  *slog.Logger

	mu          sync.Mutex
	services    map[Key]*Service
	slices      map[Key]*EndpointSlice
	slicesBySvc map[Key][]*EndpointSlice // by slice name
	pods        map[Key]*Pod
	namespaces  map[string]struct{} // declared Namespace objects
	nsRefs      map[string]int      // services and pods per namespace
	dirty       map[Key]struct{}    // services whose entry must be rebuilt
	dirtyPods   map[Key]struct{}    // pods changed since the last snapshot
	nsChanged   bool                // the set of namespaces may differ
	synced      bool
	merge       mergeScratch // scratch of mergeEndpoints
	triggers    []Trigger    // slice changes since the last snapshot, for Snapshot.Triggers
	imports     map[Key]*ServiceImport
	mcsSlices   map[Key]*EndpointSlice
	mcsChanged  bool // imports or MCS slices changed since the last snapshot

	cur     atomic.Pointer[Snapshot]
	kick    chan struct{}
	subsMu  sync.Mutex
	subs    []subscriber
	nextSub int

	followMu  sync.Mutex
	followers []*follower // Follow's, built by Run after its flushes
}

// NewStore returns an empty store. Its Snapshot is nil until the first Flush.
func NewStore(opts Options) *Store {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Store{
		opts:        opts,
		log:         log,
		services:    map[Key]*Service{},
		slices:      map[Key]*EndpointSlice{},
		slicesBySvc: map[Key][]*EndpointSlice{},
		pods:        map[Key]*Pod{},
		namespaces:  map[string]struct{}{},
		nsRefs:      map[string]int{},
		dirty:       map[Key]struct{}{},
		dirtyPods:   map[Key]struct{}{},
		imports:     map[Key]*ServiceImport{},
		mcsSlices:   map[Key]*EndpointSlice{},
		nsChanged:   true,
		merge:       mergeScratch{noLabels: opts.NoDNSLabels},
		kick:        make(chan struct{}, 1),
	}
}

// Snapshot returns the current snapshot, or nil before the first publish.
// It never blocks.
func (s *Store) Snapshot() *Snapshot { return s.cur.Load() }

// Subscribe registers fn to be called, in publish order, with every snapshot
// published from now on (and at once with the current one, if any, marked
// Full). fn runs on the publishing goroutine with the store's write lock
// held: it must only record the snapshot (sources wait while it runs) and
// never call the Store's mutation methods. Consumers with real work per
// snapshot (an index build) use Follow, which builds off the lock. The
// returned function unsubscribes.
func (s *Store) Subscribe(fn func(*Snapshot)) (cancel func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subsMu.Lock()
	s.nextSub++
	id := s.nextSub
	s.subs = append(s.subs, subscriber{id: id, fn: fn})
	s.subsMu.Unlock()
	if cur := s.cur.Load(); cur != nil {
		full := *cur
		full.Full, full.Changed = true, nil
		fn(&full)
	}
	return func() {
		s.subsMu.Lock()
		defer s.subsMu.Unlock()
		s.subs = slices.DeleteFunc(s.subs, func(x subscriber) bool { return x.id == id })
	}
}

type subscriber struct {
	id int
	fn func(*Snapshot)
}

// UpsertService adds or replaces a service.
func (s *Store) UpsertService(svc *Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.services[svc.Key]; !ok {
		s.refLocked(svc.Namespace, 1)
	}
	s.services[svc.Key] = svc
	s.markLocked(svc.Key)
}

// DeleteService removes a service (its slices stay until deleted).
func (s *Store) DeleteService(k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.services[k]; ok {
		delete(s.services, k)
		s.markLocked(k)
		s.refLocked(k.Namespace, -1)
	}
}

// UpsertEndpointSlice adds or replaces a slice.
func (s *Store) UpsertEndpointSlice(sl *EndpointSlice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.slices[sl.Key]; s.synced && !sl.TriggerTime.IsZero() && (!ok || !old.TriggerTime.Equal(sl.TriggerTime)) {
		s.triggers = append(s.triggers, Trigger{Service: Key{Namespace: sl.Namespace, Name: sl.Service}, At: sl.TriggerTime})
	}
	s.deleteSliceLocked(sl.Key)
	s.slices[sl.Key] = sl
	svc := Key{Namespace: sl.Namespace, Name: sl.Service}
	s.slicesBySvc[svc] = insertSlice(s.slicesBySvc[svc], sl)
	s.markLocked(svc)
}

// insertSlice adds sl to the slices of its service, ordered by name. A
// service's slices are a short list rather than a map: most services have
// one, and a map each would cost a few hundred bytes per service.
func insertSlice(list []*EndpointSlice, sl *EndpointSlice) []*EndpointSlice {
	i, found := slices.BinarySearchFunc(list, sl.Name, func(e *EndpointSlice, name string) int { return strings.Compare(e.Name, name) })
	if found {
		list[i] = sl
		return list
	}
	return slices.Insert(list, i, sl)
}

// DeleteEndpointSlice removes a slice.
func (s *Store) DeleteEndpointSlice(k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteSliceLocked(k)
}

func (s *Store) deleteSliceLocked(k Key) {
	old, ok := s.slices[k]
	if !ok {
		return
	}
	delete(s.slices, k)
	svc := Key{Namespace: old.Namespace, Name: old.Service}
	rest := slices.DeleteFunc(s.slicesBySvc[svc], func(e *EndpointSlice) bool { return e.Name == k.Name })
	if len(rest) == 0 {
		delete(s.slicesBySvc, svc)
	} else {
		s.slicesBySvc[svc] = rest
	}
	s.markLocked(svc)
}

// UpsertPod adds or replaces a pod.
func (s *Store) UpsertPod(p *Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pods[p.Key]; !ok {
		s.refLocked(p.Namespace, 1)
	}
	s.pods[p.Key] = p
	s.dirtyPods[p.Key] = struct{}{}
	s.kickLocked()
}

// DeletePod removes a pod.
func (s *Store) DeletePod(k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pods[k]; ok {
		delete(s.pods, k)
		s.refLocked(k.Namespace, -1)
		s.dirtyPods[k] = struct{}{}
		s.kickLocked()
	}
}

// UpsertNamespace declares a namespace.
func (s *Store) UpsertNamespace(ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.namespaces[ns]; !ok {
		s.namespaces[ns] = struct{}{}
		s.nsChanged = s.nsChanged || s.nsRefs[ns] == 0
		s.kickLocked()
	}
}

// DeleteNamespace forgets a declared namespace.
func (s *Store) DeleteNamespace(ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.namespaces[ns]; ok {
		delete(s.namespaces, ns)
		s.nsChanged = s.nsChanged || s.nsRefs[ns] == 0
		s.kickLocked()
	}
}

// Objects is a whole cluster as a source read it (the file source).
type Objects struct {
	Services   []*Service
	Slices     []*EndpointSlice
	Pods       []*Pod
	Namespaces []string
	// Imports and MCSSlices are the multi-cluster objects (mcs.go).
	Imports   []*ServiceImport
	MCSSlices []*EndpointSlice
}

// Replace makes the store hold exactly objs, marking only what differs as
// changed. Call Flush to publish.
func (s *Store) Replace(objs Objects) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[Key]*Service, len(objs.Services))
	for _, svc := range objs.Services {
		next[svc.Key] = svc
	}
	for k, old := range s.services {
		if n, ok := next[k]; !ok || !equalService(old, n) {
			s.markLocked(k)
		}
	}
	for k := range next {
		if _, ok := s.services[k]; !ok {
			s.markLocked(k)
		}
	}
	s.services = next

	nextSl := make(map[Key]*EndpointSlice, len(objs.Slices))
	for _, sl := range objs.Slices {
		nextSl[sl.Key] = sl
	}
	for k, old := range s.slices {
		if n, ok := nextSl[k]; !ok || !equalSlice(old, n) {
			s.markLocked(Key{Namespace: old.Namespace, Name: old.Service})
			if ok {
				s.markLocked(Key{Namespace: n.Namespace, Name: n.Service})
			}
		}
	}
	for k, n := range nextSl {
		if _, ok := s.slices[k]; !ok {
			s.markLocked(Key{Namespace: n.Namespace, Name: n.Service})
		}
	}
	s.slices = nextSl
	s.slicesBySvc = map[Key][]*EndpointSlice{}
	for _, sl := range nextSl {
		svc := Key{Namespace: sl.Namespace, Name: sl.Service}
		s.slicesBySvc[svc] = insertSlice(s.slicesBySvc[svc], sl)
	}

	nextPods := make(map[Key]*Pod, len(objs.Pods))
	for _, p := range objs.Pods {
		nextPods[p.Key] = p
	}
	for k, old := range s.pods {
		if n, ok := nextPods[k]; !ok || !equalPod(old, n) {
			s.dirtyPods[k] = struct{}{}
		}
	}
	for k := range nextPods {
		if _, ok := s.pods[k]; !ok {
			s.dirtyPods[k] = struct{}{}
		}
	}
	s.pods = nextPods
	s.namespaces = make(map[string]struct{}, len(objs.Namespaces))
	for _, ns := range objs.Namespaces {
		s.namespaces[ns] = struct{}{}
	}
	clear(s.nsRefs)
	for k := range s.services {
		s.nsRefs[k.Namespace]++
	}
	for k := range s.pods {
		s.nsRefs[k.Namespace]++
	}
	s.nsChanged = true // files are small: compare the namespace sets whole
	s.replaceMCSLocked(objs.Imports, objs.MCSSlices)
	s.kickLocked()
}

// MarkSynced records that the source has delivered a full view; until then
// Flush publishes nothing, so the server answers SERVFAIL rather than an
// incomplete cluster.
func (s *Store) MarkSynced() {
	s.mu.Lock()
	s.synced = true
	s.kickLocked()
	s.mu.Unlock()
}

// Synced reports whether MarkSynced was called.
func (s *Store) Synced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.synced
}

// refLocked counts a service or pod in or out of its namespace, noting
// when the namespace appears or disappears.
func (s *Store) refLocked(ns string, d int) {
	s.nsRefs[ns] += d
	n := s.nsRefs[ns]
	if n == 0 {
		delete(s.nsRefs, ns)
	}
	if _, declared := s.namespaces[ns]; !declared && (n == 0 || (n == 1 && d > 0)) {
		s.nsChanged = true
	}
}

func (s *Store) markLocked(k Key) {
	s.dirty[k] = struct{}{}
	s.kickLocked()
}

func (s *Store) kickLocked() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}
