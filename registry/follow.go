package registry

import (
	"maps"
	"slices"
	"sync"
)

// Follow runs build with the store's snapshots off the store's lock, the
// way a consumer whose work is long (an index build) must take them:
// change tracking is split from building. The store's publish callback
// only records the latest snapshot and the keys changed since the last
// build (cheap, under the write lock, so sources never wait on build);
// one builder goroutine takes what is pending and calls build with it.
//
// Snapshots published while a build runs are coalesced: the next build
// gets the latest one, with Changed the union of the skipped snapshots'
// (and Full when any of them was Full), so an incremental consumer sees
// every change exactly as if it had been called with each snapshot.
// build is never called concurrently with itself, and sees serials in
// increasing order.
//
// When the store already holds a snapshot, Follow builds it (marked Full)
// on the caller's goroutine before returning, so a consumer is ready to
// serve once Follow returns (a handler swapped in on reload). stop
// unsubscribes, waits for a build in progress and ends the goroutine; no
// build starts after it returns. Call stop once.
func (s *Store) Follow(build func(*Snapshot)) (stop func()) {
	f := &follower{build: build, wake: make(chan struct{}, 1), done: make(chan struct{})}
	unsub := s.Subscribe(f.record)
	f.drain() // the current snapshot, if any: built before returning
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-f.done:
				return
			case <-f.wake:
				f.drain()
			}
		}
	}()
	return func() {
		unsub()
		close(f.done)
		<-exited
	}
}

// follower is the change tracker and builder of one Follow.
type follower struct {
	build func(*Snapshot)
	wake  chan struct{} // one pending wake-up at most
	done  chan struct{}

	mu      sync.Mutex
	pending *Snapshot        // latest snapshot not built yet, or nil
	skipped int              // snapshots recorded since the last build
	changed map[Key]struct{} // union of their Changed (unless full)
	full    bool             // one of them was Full
}

// record is the Subscribe callback: it runs under the store's write lock
// and only notes what is pending.
func (f *follower) record(snap *Snapshot) {
	f.mu.Lock()
	f.pending = snap
	f.skipped++
	if snap.Full {
		f.full, f.changed = true, nil
	} else if !f.full {
		if f.changed == nil {
			f.changed = make(map[Key]struct{}, len(snap.Changed))
		}
		for _, k := range snap.Changed {
			f.changed[k] = struct{}{}
		}
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// drain builds what is pending, if anything. Only the builder (or Follow
// before it starts the builder) calls it.
func (f *follower) drain() {
	f.mu.Lock()
	snap, n, changed, full := f.pending, f.skipped, f.changed, f.full
	f.pending, f.skipped, f.changed, f.full = nil, 0, nil, false
	f.mu.Unlock()
	if snap == nil {
		return
	}
	if n > 1 { // coalesced: the latest state with every change since the last build
		merged := *snap
		merged.Full, merged.Changed = full, nil
		if !full {
			merged.Changed = slices.Collect(maps.Keys(changed))
		}
		snap = &merged
	}
	f.build(snap)
}
