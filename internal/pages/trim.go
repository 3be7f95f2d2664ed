package pages

import (
	"sync"
	"time"
)

// SettleTrimmer runs trim (return freed memory to the OS) once the cluster
// stops changing: quiet after the last change, or maxWait after the first
// change not yet followed by a trim when changes never stop.
//
// Each change leaves garbage: in clusterdns (a snapshot applied to the
// index) the copied parts of the snapshot and of the index, in nodeproxy
// (a partial sync) the snapshot's and the transaction's. The garbage collector lets the
// heap grow to twice the live data before it collects, so a burst of
// changes would keep the process at up to twice its resting size; one
// collection and scavenge once things settle (a few milliseconds of CPU
// for a cluster of 100,000 endpoints) brings it back.
//
// Changed is called from the store's goroutine (clusterdns) or after a
// sync (nodeproxy's Proxier) and never blocks; trim runs
// on a timer goroutine, never two at once.
type SettleTrimmer struct {
	quiet, maxWait time.Duration
	trim           func()

	mu       sync.Mutex
	timer    *time.Timer
	first    time.Time // first change since the last trim (zero: none)
	last     time.Time // latest change
	trimming sync.Mutex
}

// NewSettleTrimmer returns a trimmer; nothing runs before a change.
func NewSettleTrimmer(quiet, maxWait time.Duration, trim func()) *SettleTrimmer {
	return &SettleTrimmer{quiet: quiet, maxWait: maxWait, trim: trim}
}

// Changed notes a change of the cluster.
func (s *SettleTrimmer) Changed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.last = now
	if !s.first.IsZero() {
		return // a timer is armed; it looks at last when it fires
	}
	s.first = now
	if s.timer == nil {
		s.timer = time.AfterFunc(s.quiet, s.fire)
	} else {
		s.timer.Reset(s.quiet)
	}
}

// fire trims when the changes have settled, or re-arms for when they may.
func (s *SettleTrimmer) fire() {
	s.mu.Lock()
	now := time.Now()
	untilQuiet := s.last.Add(s.quiet).Sub(now)
	untilMax := s.first.Add(s.maxWait).Sub(now)
	if wait := min(untilQuiet, untilMax); wait > 0 {
		s.timer.Reset(wait)
		s.mu.Unlock()
		return
	}
	s.first = time.Time{}
	s.mu.Unlock()
	s.trimming.Lock()
	defer s.trimming.Unlock()
	s.trim()
}
