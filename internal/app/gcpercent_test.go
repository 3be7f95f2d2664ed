package app

import (
	"log/slog"
	"runtime/debug"
	"testing"
)

// The GC target becomes gc_percent when memory is first released (after
// the first full build), only then, and not when $GOGC is set.
func TestGCPercentAfterFirstBuild(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	quiet := slog.New(slog.DiscardHandler)
	t.Setenv("GOGC", "")
	a := &answerer{log: quiet, gcPercent: 30}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC target %d before the first release, want 100", got)
	}
	a.releaseMemory()
	if got := debug.SetGCPercent(100); got != 30 {
		t.Fatalf("GC target %d after the first release, want gc_percent 30", got)
	}
	a.releaseMemory() // later releases leave the target alone
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC target %d after a later release, want it untouched (100)", got)
	}

	t.Setenv("GOGC", "200")
	b := &answerer{log: quiet, gcPercent: 30}
	b.releaseMemory()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC target %d with $GOGC set, want it untouched", got)
	}
	c := &answerer{log: quiet} // gc_percent 0: Go's default
	t.Setenv("GOGC", "")
	c.releaseMemory()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC target %d with gc_percent 0, want it untouched", got)
	}
}
