package pages

import (
	"sync/atomic"
	"testing"
	"time"
)

// One change: one trim, after the quiet time and not before.
func TestSettleTrimmerOnceAfterQuiet(t *testing.T) {
	var n atomic.Int32
	s := NewSettleTrimmer(50*time.Millisecond, time.Second, func() { n.Add(1) })
	s.Changed()
	time.Sleep(10 * time.Millisecond)
	if n.Load() != 0 {
		t.Fatal("trimmed before the quiet time")
	}
	waitFor(t, func() bool { return n.Load() == 1 })
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
	waitFor(t, func() bool { return lastTrim.Load() >= lastChange })
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
