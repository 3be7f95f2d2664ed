package pages

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/internal/testbin"
)

// One change: one trim, after the quiet time and not before.
func TestSettleTrimmerOnceAfterQuiet(t *testing.T) {
	var n atomic.Int32
	var trimmedAt atomic.Int64
	s := NewSettleTrimmer(50*time.Millisecond, time.Second, func() {
		trimmedAt.CompareAndSwap(0, time.Now().UnixNano())
		n.Add(1)
	})
	changedAt := time.Now()
	s.Changed()
	testbin.WaitFor(t, 5*time.Second, func() bool { return n.Load() == 1 })
	// Measured rather than slept: a busy machine only delays the trim.
	if quiet := time.Duration(trimmedAt.Load() - changedAt.UnixNano()); quiet < 50*time.Millisecond {
		t.Fatalf("trimmed %v after the change, before the quiet time (50ms)", quiet)
	}
	time.Sleep(150 * time.Millisecond)
	if got := n.Load(); got != 1 {
		t.Fatalf("%d trims after one change, want 1", got)
	}
}

// Changes that never stop still get a trim every maxWait or so, and the
// last change is followed by a trim once they stop.
func TestSettleTrimmerUnderContinuousChanges(t *testing.T) {
	var n atomic.Int32
	var lastTrim atomic.Int64
	s := NewSettleTrimmer(50*time.Millisecond, 200*time.Millisecond, func() {
		n.Add(1)
		lastTrim.Store(time.Now().UnixNano())
	})
	var lastChange int64
	end := time.Now().Add(700 * time.Millisecond)
	for time.Now().Before(end) {
		s.Changed()
		lastChange = time.Now().UnixNano()
		time.Sleep(5 * time.Millisecond)
	}
	if during := n.Load(); during < 2 || during > 5 {
		t.Fatalf("%d trims during 700 ms of changes with maxWait 200 ms, want about 3", during)
	}
	testbin.WaitFor(t, 5*time.Second, func() bool { return lastTrim.Load() >= lastChange })
}
