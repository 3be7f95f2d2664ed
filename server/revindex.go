package server

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strings"

	"github.com/clusterdns/clusterdns/registry"
)

// revIndex maps cluster addresses to the names that point back at them
// (ClusterIPs to their services, headless endpoints to their names): what
// PTR answers are written from. It holds one 32-byte entry per address and
// name, in shards of sorted slices found by binary search: with 100,000
// endpoints that is a third of a map's memory. Like cow.Map it is
// immutable once published, and an edit copies only the shards it touches.
type revIndex struct {
	shards [revShards][]revEntry
	size   int
}

// revShards is the number of shards: an edit copies the array of shard
// headers (12 KiB) and each touched shard (1/512 of the entries).
const revShards = 512

// revEntry is one name of an address. Entries are sorted by address, then
// by namespace and service of the name, so that the names of one address
// are adjacent and in a stable order.
type revEntry struct {
	hi, lo uint64 // the address's 16-byte form, big-endian halves
	ref    ptrRef
}

func revKey(a [16]byte) (hi, lo uint64) {
	return binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
}

func revShard(hi, lo uint64) int {
	h := (hi ^ lo ^ lo>>29) * 0x9E3779B97F4A7C15
	return int(h >> 55) // top 9 bits: 512 shards
}

func compareRev(a revEntry, hi, lo uint64) int {
	if c := cmp.Compare(a.hi, hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, lo)
}

func compareEntries(a, b revEntry) int {
	if c := compareRev(a, b.hi, b.lo); c != 0 {
		return c
	}
	return compareRefs(a.ref, b.ref)
}

// compareRefs orders the names of one address by namespace and service, so
// that answers do not depend on the order services were indexed in.
func compareRefs(a, b ptrRef) int {
	if c := strings.Compare(a.entry.Namespace, b.entry.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.entry.Name, b.entry.Name)
}

// run returns the bounds of the entries of an address in a shard.
func run(sh []revEntry, hi, lo uint64) (int, int) {
	start, _ := slices.BinarySearchFunc(sh, revEntry{hi: hi, lo: lo}, func(e, t revEntry) int { return compareRev(e, t.hi, t.lo) })
	end := start
	for end < len(sh) && sh[end].hi == hi && sh[end].lo == lo {
		end++
	}
	return start, end
}

// lookup returns the names of an address (a view into the index: do not
// modify), empty when it has none.
func (r *revIndex) lookup(a [16]byte) []revEntry {
	hi, lo := revKey(a)
	sh := r.shards[revShard(hi, lo)]
	start, end := run(sh, hi, lo)
	return sh[start:end]
}

// Len returns the number of addresses with names.
func (r *revIndex) Len() int { return r.size }

// revBuilder fills a new revIndex in bulk: entries are appended, then each
// shard sorted once.
type revBuilder struct{ r revIndex }

func (b *revBuilder) add(a [16]byte, ref ptrRef) {
	hi, lo := revKey(a)
	s := revShard(hi, lo)
	b.r.shards[s] = append(b.r.shards[s], revEntry{hi: hi, lo: lo, ref: ref})
}

func (b *revBuilder) done() *revIndex {
	r := &b.r
	for i, sh := range r.shards {
		slices.SortFunc(sh, compareEntries)
		for j := range sh {
			if j == 0 || sh[j].hi != sh[j-1].hi || sh[j].lo != sh[j-1].lo {
				r.size++
			}
		}
		r.shards[i] = slices.Clone(sh) // at its size: appending left up to twice that
	}
	return r
}

// revEditor builds the next version of a revIndex from a published one,
// which stays valid and unchanged for readers.
type revEditor struct {
	r      *revIndex
	copied [revShards]bool
}

func (r *revIndex) edit() *revEditor {
	next := *r
	return &revEditor{r: &next}
}

// replace drops the name of service k at address a, and adds ref (when
// not nil) in its place.
func (e *revEditor) replace(a [16]byte, k registry.Key, ref *ptrRef) {
	hi, lo := revKey(a)
	s := revShard(hi, lo)
	sh := e.r.shards[s]
	start, end := run(sh, hi, lo)
	had := end > start
	i := slices.IndexFunc(sh[start:end], func(x revEntry) bool { return x.ref.entry.Key == k })
	if i < 0 && ref == nil {
		return
	}
	if !e.copied[s] {
		sh = slices.Clone(sh)
		e.copied[s] = true
	}
	if i >= 0 {
		sh = slices.Delete(sh, start+i, start+i+1)
		end--
	}
	if ref != nil {
		at := start
		for at < end && compareRefs(sh[at].ref, *ref) < 0 {
			at++
		}
		sh = slices.Insert(sh, at, revEntry{hi: hi, lo: lo, ref: *ref})
		end++
	}
	e.r.shards[s] = sh
	switch has := end > start; {
	case has && !had:
		e.r.size++
	case had && !has:
		e.r.size--
	}
}

func (e *revEditor) done() *revIndex { return e.r }
