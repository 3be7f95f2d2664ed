package registry

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func svc(ns, name string) *Service {
	return &Service{Key: Key{ns, name}, Kind: KindClusterIP}
}

// heldFollow returns a synced store of the namespace ns, followed by a
// build that sends each snapshot to snaps and, for those hold selects,
// waits until release is closed. The follow stops when the test ends.
func heldFollow(t *testing.T, hold func(*Snapshot) bool) (st *Store, snaps chan *Snapshot, release chan struct{}) {
	st = NewStore(Options{})
	st.UpsertNamespace("ns") // services in it leave the namespace set alone
	st.MarkSynced()
	st.Flush()
	release = make(chan struct{})
	snaps = make(chan *Snapshot, 16)
	stop := st.Follow(func(s *Snapshot) {
		snaps <- s
		if hold(s) {
			<-release
		}
	})
	t.Cleanup(func() {
		select { // a failed test may leave a build held
		case <-release:
		default:
			close(release)
		}
		stop()
	})
	return st, snaps, release
}

// Follow builds the current snapshot before it returns, so a consumer
// swapped in right after is ready.
func TestFollowBuildsCurrentBeforeReturning(t *testing.T) {
	st := NewStore(Options{})
	st.UpsertService(svc("ns", "a"))
	st.MarkSynced()
	first := st.Flush()
	var got []*Snapshot
	stop := st.Follow(func(s *Snapshot) { got = append(got, s) })
	defer stop()
	if len(got) != 1 || !got[0].Full || got[0].Serial != first.Serial {
		t.Fatalf("builds before Follow returned: %v, want the current snapshot, Full", got)
	}
}

// A build in progress does not hold the store: sources keep writing and
// flushing, and what they publish meanwhile reaches the next build as one
// snapshot carrying every change.
func TestFollowBuildsOffTheLockAndCoalesces(t *testing.T) {
	st, snaps, release := heldFollow(t, func(s *Snapshot) bool { return !s.Full })
	if s := <-snaps; !s.Full {
		t.Fatalf("first build: %+v, want Full", s)
	}

	st.UpsertService(svc("ns", "a"))
	st.Flush()
	blocked := <-snaps // the builder now waits in build
	if !slices.Equal(blocked.Changed, []Key{{"ns", "a"}}) {
		t.Fatalf("first change: %v", blocked.Changed)
	}
	// These flushes return while the build is held: the callback only
	// records. (Were the build under the lock, they would hang here.)
	published := make(chan *Snapshot)
	go func() {
		st.UpsertService(svc("ns", "b"))
		st.Flush()
		st.UpsertService(svc("ns", "c"))
		st.DeleteService(Key{"ns", "a"})
		published <- st.Flush()
	}()
	var last *Snapshot
	select {
	case last = <-published:
	case <-time.After(10 * time.Second):
		t.Fatal("Flush waited for a build in progress")
	}
	close(release)
	merged := <-snaps
	if merged.Serial != last.Serial || merged.Full {
		t.Fatalf("coalesced build: serial %d full %v, want serial %d incremental", merged.Serial, merged.Full, last.Serial)
	}
	changed := slices.SortedFunc(slices.Values(merged.Changed), func(a, b Key) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	if want := []Key{{"ns", "a"}, {"ns", "b"}, {"ns", "c"}}; !slices.Equal(changed, want) {
		t.Fatalf("coalesced Changed = %v, want %v (the union of the skipped snapshots')", changed, want)
	}
	if merged.Service(Key{"ns", "a"}) != nil || merged.Service(Key{"ns", "c"}) == nil {
		t.Fatal("the coalesced build must see the latest state")
	}
}

// A Full snapshot among the coalesced ones makes the build Full.
func TestFollowCoalescedFullStaysFull(t *testing.T) {
	st, snaps, release := heldFollow(t, func(s *Snapshot) bool {
		return s.Changed != nil && s.Changed[0] == (Key{"ns", "hold"})
	})
	<-snaps
	st.UpsertService(svc("ns", "hold"))
	st.Flush()
	<-snaps
	st.UpsertNamespace("new") // the namespace set changes: Full
	if s := st.Flush(); !s.Full {
		t.Fatal("a new namespace must publish a Full snapshot")
	}
	st.UpsertService(svc("new", "x"))
	last := st.Flush()
	close(release)
	if s := <-snaps; !s.Full || s.Changed != nil || s.Serial != last.Serial {
		t.Fatalf("coalesced over a Full one: full %v changed %v serial %d, want Full at %d", s.Full, s.Changed, s.Serial, last.Serial)
	}
}

// After stop returns no build runs, even for snapshots published before.
func TestFollowStop(t *testing.T) {
	st := NewStore(Options{})
	st.UpsertNamespace("ns") // services in it leave the namespace set alone
	st.MarkSynced()
	st.Flush()
	builds := make(chan *Snapshot, 16)
	stop := st.Follow(func(s *Snapshot) { builds <- s })
	<-builds
	stop()
	st.UpsertService(svc("ns", "late"))
	st.Flush()
	select {
	case s := <-builds:
		t.Fatalf("build after stop: serial %d", s.Serial)
	default:
	}
}

// With Run publishing, the builds run on Run's goroutine after each flush
// (and on the builder's for flushes made elsewhere): never two at once,
// serials in increasing order, the last change always built.
func TestFollowWithRunInOrder(t *testing.T) {
	st := NewStore(Options{})
	st.UpsertNamespace("ns")
	st.MarkSynced()
	st.Flush()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { st.Run(ctx); close(ran) }()
	defer func() { cancel(); <-ran }()
	var inBuild atomic.Int32
	var last atomic.Uint32
	var bad atomic.Value
	stop := st.Follow(func(s *Snapshot) {
		if inBuild.Add(1) != 1 {
			bad.CompareAndSwap(nil, "two builds at once")
		}
		if prev := last.Swap(s.Serial); s.Serial <= prev && prev != 0 {
			bad.CompareAndSwap(nil, fmt.Sprintf("serial %d built after %d", s.Serial, prev))
		}
		inBuild.Add(-1)
	})
	defer stop()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				st.UpsertService(svc("ns", fmt.Sprintf("s%d-%d", g, i)))
				if g == 0 && i%10 == 0 {
					st.Flush() // some flushes off Run: the builder goroutine builds them
				}
			}
		})
	}
	wg.Wait()
	want := st.Flush().Serial
	deadline := time.Now().Add(10 * time.Second)
	for last.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("last build %d, want the last snapshot %d", last.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
	if b := bad.Load(); b != nil {
		t.Fatal(b)
	}
}

// A burst of changes that lands while Run builds is published and built
// as one: one more build, carrying every change.
func TestFollowWithRunCoalescesABurst(t *testing.T) {
	st := NewStore(Options{})
	st.UpsertNamespace("ns")
	st.MarkSynced()
	st.Flush()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { st.Run(ctx); close(ran) }()
	defer func() { cancel(); <-ran }()
	release := make(chan struct{})
	builds := make(chan *Snapshot, 16)
	first := true
	stop := st.Follow(func(s *Snapshot) {
		if first { // the current snapshot, built by Follow itself
			first = false
			return
		}
		builds <- s
		if len(s.Changed) == 1 && s.Changed[0].Name == "first" {
			<-release
		}
	})
	defer stop()
	st.UpsertService(svc("ns", "first"))
	if s := <-builds; len(s.Changed) != 1 {
		t.Fatalf("first build: changed %v", s.Changed)
	}
	for i := range 100 { // while the first build is held
		st.UpsertService(svc("ns", fmt.Sprintf("burst-%d", i)))
	}
	close(release)
	s := <-builds
	if len(s.Changed) != 100 || s.Full {
		t.Fatalf("the burst built as %d changes (full %v), want one build of 100", len(s.Changed), s.Full)
	}
	if cur := st.Snapshot(); cur.Serial != s.Serial {
		t.Fatalf("the store published serial %d after the burst's %d: the burst took more than one snapshot", cur.Serial, s.Serial)
	}
}
