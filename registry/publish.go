package registry

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/clusterdns/clusterdns/internal/cow"
)

// Publishing: Flush turns the changes the mutation methods recorded into a
// new Snapshot (rebuilding only the changed services), and Run flushes
// when kicked.

// Flush publishes a new snapshot if anything changed since the last one and
// the store is synced. It returns the current snapshot. Cost: the changed
// services, plus the namespaces and pods when those changed.
func (s *Store) Flush() *Snapshot {
	next, logPublished := s.flush()
	logPublished()
	return next
}

// flush publishes like Flush and returns, apart, the logging of it: Run
// logs once the followers have built it, so that a debug log does not
// delay the answer.
func (s *Store) flush() (*Snapshot, func()) {
	s.mu.Lock()
	start := time.Now()
	next, published := s.flushLocked()
	took := time.Since(start)
	s.mu.Unlock()
	if !published {
		return next, func() {}
	}
	return next, func() {
		s.log.Debug("snapshot published", "serial", next.Serial, "services", next.services.Len(),
			"changed", len(next.Changed), "full", next.Full, "took", took)
	}
}

// flushLocked is Flush under the store's lock: it returns the current
// snapshot, and whether it is new.
func (s *Store) flushLocked() (*Snapshot, bool) {
	prev := s.cur.Load()
	if !s.synced || (prev != nil && len(s.dirty) == 0 && len(s.dirtyPods) == 0 && !s.nsChanged && !s.mcsChanged) {
		return prev, false
	}
	next := &Snapshot{Full: prev == nil}
	if prev == nil {
		next.Serial = uint32(time.Now().Unix())
		// The first snapshot's keys, and the entries of services without
		// endpoints, in one block each (not scattered among the merge's
		// garbage); later ones come one by one. An entry with endpoints
		// comes on its own: in the block, its old version would stay
		// reachable (the block lives on) and keep the service's first
		// endpoints and slices in memory after every change.
		ed := cow.New[string, *ServiceEntry]().Edit()
		entries := make([]ServiceEntry, 0, len(s.services))
		order := slices.Collect(maps.Keys(s.services))
		n := 0
		for _, k := range order {
			n += len(k.Namespace) + 1 + len(k.Name)
		}
		var keys strings.Builder
		keys.Grow(n)
		for _, k := range order {
			keys.WriteString(k.Namespace)
			keys.WriteByte('/')
			keys.WriteString(k.Name)
		}
		all, off := keys.String(), 0
		for _, k := range order {
			key := all[off : off+len(k.Namespace)+1+len(k.Name)]
			off += len(key)
			if _, ok := s.slicesBySvc[k]; ok {
				ed.Set(key, s.entryLocked(k, s.services[k]))
				continue
			}
			entries = append(entries, ServiceEntry{Service: s.services[k]})
			ed.Set(key, &entries[len(entries)-1])
		}
		next.services = ed.Done()
	} else {
		next.Serial = max(prev.Serial+1, uint32(time.Now().Unix()))
		ed := prev.services.Edit()
		for k := range s.dirty {
			if svc, ok := s.services[k]; ok {
				ed.Set(k.String(), s.entryLocked(k, svc))
			} else {
				ed.Delete(k.String())
			}
			next.Changed = append(next.Changed, k)
		}
		next.services = ed.Done()
	}
	// Namespaces: rebuilt only when the set may have changed; the index is
	// rebuilt (Full) only when it did.
	next.namespaces = prev.namespacesOrNil()
	if s.nsChanged || prev == nil {
		set := maps.Clone(s.namespaces)
		for ns := range s.nsRefs {
			set[ns] = struct{}{}
		}
		if prev == nil || !maps.Equal(set, prev.namespaces) {
			next.Full = true
			next.namespaces = set
		}
	}
	// Pods: copy on write of the changed ones; they never force a rebuild
	// of the index (they are only read at query time).
	if prev == nil {
		next.pods, next.podsByIP = cow.New[string, *Pod](), cow.New[[16]byte, []*Pod]()
	} else {
		next.pods, next.podsByIP = prev.pods, prev.podsByIP
	}
	if len(s.dirtyPods) > 0 {
		pods, byIP := next.pods.Edit(), next.podsByIP.Edit()
		for k := range s.dirtyPods {
			if old, ok := pods.Get(k.String()); ok {
				for _, ip := range old.IPs {
					cur, _ := byIP.Get(addrKey(ip))
					rest := slices.DeleteFunc(slices.Clone(cur), func(p *Pod) bool { return p.Key == k })
					if len(rest) == 0 {
						byIP.Delete(addrKey(ip))
					} else {
						byIP.Set(addrKey(ip), rest)
					}
				}
			}
			p, ok := s.pods[k]
			if !ok {
				pods.Delete(k.String())
				continue
			}
			pods.Set(k.String(), p)
			for _, ip := range p.IPs {
				cur, _ := byIP.Get(addrKey(ip))
				byIP.Set(addrKey(ip), append(slices.Clip(cur), p))
			}
		}
		next.pods, next.podsByIP = pods.Done(), byIP.Done()
	}
	// The clusterset: rebuilt whole when it changed, and the index with it.
	next.clusterset = prev.clusterSetOrNil()
	if s.mcsChanged || prev == nil {
		next.clusterset = buildClusterSet(s.imports, s.mcsSlices)
		next.Full = next.Full || prev == nil || prev.clusterset.Len() > 0 || next.clusterset.Len() > 0
		s.mcsChanged = false
	}
	if next.Full {
		next.Changed = nil
	}
	// A full sync leaves tables of every key behind: start small again.
	if len(s.dirty) > 1024 {
		s.dirty = map[Key]struct{}{}
	} else {
		clear(s.dirty)
	}
	if len(s.dirtyPods) > 1024 {
		s.dirtyPods = map[Key]struct{}{}
	} else {
		clear(s.dirtyPods)
	}
	s.nsChanged = false
	next.Triggers, s.triggers = s.triggers, nil
	s.cur.Store(next)
	s.subsMu.Lock()
	subs := slices.Clone(s.subs)
	s.subsMu.Unlock()
	for _, sub := range subs {
		sub.fn(next)
	}
	return next, true
}

// Run publishes changes as they arrive until ctx ends, and builds each
// published snapshot for the store's followers (Follow) on its own
// goroutine, off the store's lock: a burst of changes that lands while a
// snapshot is being published or built is published together in the next
// one. Sources that deliver single events (the Kubernetes watch) use it;
// it blocks until ctx is done.
func (s *Store) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			_, logPublished := s.flush()
			s.buildFollowers()
			logPublished()
		}
	}
}

func (s *Store) entryLocked(k Key, svc *Service) *ServiceEntry {
	return &ServiceEntry{Service: svc, Endpoints: s.mergeLocked(k), TriggerTime: s.triggerTimeLocked(k)}
}

// triggerTimeLocked is the latest trigger time of service k's slices.
func (s *Store) triggerTimeLocked(k Key) time.Time {
	var t time.Time
	for _, sl := range s.slicesBySvc[k] {
		if sl.TriggerTime.After(t) {
			t = sl.TriggerTime
		}
	}
	return t
}

func (s *Store) mergeLocked(k Key) []MergedEndpoint {
	return mergeEndpoints(s.slicesBySvc[k], s.opts.EndpointPodNames, &s.merge)
}
