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
// what is pending is then built by the store's Run goroutine right after
// the Flush that published it (no hand-over to another goroutine on the
// path of a watch event), or, for snapshots flushed elsewhere (Flush
// called by a source or a test), by Follow's own builder goroutine.
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
	f.buildMu.Lock()
	f.buildPending() // the current snapshot, if any: built before returning
	f.buildMu.Unlock()
	s.followMu.Lock()
	s.followers = append(s.followers, f)
	s.followMu.Unlock()
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
		s.followMu.Lock()
		s.followers = slices.DeleteFunc(s.followers, func(x *follower) bool { return x == f })
		s.followMu.Unlock()
		close(f.done)
		<-exited
		f.buildMu.Lock() // waits for a build Run may be doing
		f.stopped = true
		f.buildMu.Unlock()
	}
}

// buildFollowers builds what the followers have pending, on the calling
// goroutine (Run's, after a Flush). A follower whose builder goroutine is
// building already is skipped: that one looks again when it is done.
func (s *Store) buildFollowers() {
	s.followMu.Lock()
	fs := slices.Clone(s.followers)
	s.followMu.Unlock()
	for _, f := range fs {
		f.drain()
	}
}

// follower is the change tracker and builder of one Follow.
type follower struct {
	build func(*Snapshot)
	wake  chan struct{} // one pending wake-up at most
	done  chan struct{}

	// buildMu is held while taking what is pending and building it, by
	// whichever goroutine drains (Run's or the builder's): one build at a
	// time, in serial order.
	buildMu sync.Mutex
	stopped bool // under buildMu: no build any more

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

// drain builds what is pending until nothing is, unless another goroutine
// is building: that one looks at what is pending again after its build
// (every record is followed by a drain that either builds it or finds the
// lock held by one that will).
func (f *follower) drain() {
	for f.buildMu.TryLock() {
		built := false
		if !f.stopped {
			built = f.buildPending()
		}
		f.buildMu.Unlock()
		if !built || !f.hasPending() {
			return
		}
	}
}

// hasPending reports whether a snapshot waits to be built.
func (f *follower) hasPending() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pending != nil
}

// buildPending builds what is pending, if anything, and reports whether it
// did. The caller holds buildMu.
func (f *follower) buildPending() bool {
	f.mu.Lock()
	snap, n, changed, full := f.pending, f.skipped, f.changed, f.full
	f.pending, f.skipped, f.changed, f.full = nil, 0, nil, false
	f.mu.Unlock()
	if snap == nil {
		return false
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
	return true
}
