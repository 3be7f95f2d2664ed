package server

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"

	"github.com/clusterdns/clusterdns/registry"
)

// revIndex maps cluster addresses to the names that point back at them
// (ClusterIPs to their services, headless endpoints to their names): what
// PTR answers are written from. It holds one entry per address and name
// (16 bytes for IPv4, 32 for IPv6), in shards of sorted slices found by
// binary search: with 100,000 endpoints that is a sixth of a map's memory.
// Like cow.Map it is immutable once published, and an edit copies only the
// shards it touches.
type revIndex struct {
	v4   revTable[rev4]
	v6   revTable[rev6]
	size int // addresses
}

// revShards is the number of shards of each table, in revPages pages of
// shard headers: an edit copies the two tables' arrays of page pointers
// (256 bytes), each touched page (768 bytes) and each touched shard (1/512
// of a table's entries), so that a change costs what it touches whatever
// the size of the cluster.
const (
	revShards    = 512
	revPages     = 16
	revPageSlots = revShards / revPages
)

// revTable is one table of sorted shards. A nil page is a page of empty
// shards (an IPv6 table of an IPv4 cluster holds nothing but 16 nil
// pointers).
type revTable[E revItem[E]] struct {
	pages [revPages]*[revPageSlots][]E
}

// shard returns shard s (do not modify).
func (t *revTable[E]) shard(s int) []E {
	if p := t.pages[s/revPageSlots]; p != nil {
		return p[s%revPageSlots]
	}
	return nil
}

// setShard replaces shard s in a table being built or edited, whose page
// of s the caller owns (see ownPage).
func (t *revTable[E]) setShard(s int, sh []E) {
	t.pages[s/revPageSlots][s%revPageSlots] = sh
}

// ownPage makes the page of shard s the table's own (a copy, or a new
// page) unless owned says it already is.
func (t *revTable[E]) ownPage(s int, owned *[revPages]bool) {
	p := s / revPageSlots
	if owned[p] {
		return
	}
	next := new([revPageSlots][]E)
	if old := t.pages[p]; old != nil {
		*next = *old
	}
	t.pages[p] = next
	owned[p] = true
}

// shards iterates over every shard with its number.
func (t *revTable[E]) shards(yield func(int, []E) bool) {
	for p, page := range t.pages {
		if page == nil {
			continue
		}
		for i, sh := range page {
			if !yield(p*revPageSlots+i, sh) {
				return
			}
		}
	}
}

// revItem is an entry of a revTable. Entries are sorted by address, then
// by namespace and service of the name, so that the names of one address
// are adjacent and in a stable order.
type revItem[E any] interface {
	key() (hi, lo uint64) // the address's 16-byte form, big-endian halves
	name() ptrRef
	make(hi, lo uint64, r ptrRef) E
}

// rev4 is a name of an IPv4 address.
type rev4 struct {
	svc  *registry.Service
	addr uint32
	ep   int32
}

func (e rev4) key() (uint64, uint64) { return 0, 0xFFFF<<32 | uint64(e.addr) }
func (e rev4) name() ptrRef          { return ptrRef{svc: e.svc, ep: e.ep} }
func (rev4) make(_, lo uint64, r ptrRef) rev4 {
	return rev4{svc: r.svc, addr: uint32(lo), ep: r.ep}
}
func (e rev6) key() (uint64, uint64)           { return e.hi, e.lo }
func (e rev6) name() ptrRef                    { return e.ref }
func (rev6) make(hi, lo uint64, r ptrRef) rev6 { return rev6{hi: hi, lo: lo, ref: r} }
func isRev4(hi, lo uint64) bool                { return hi == 0 && lo>>32 == 0xFFFF }
func revKey(a [16]byte) (hi, lo uint64) {
	return binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
}
func sameKey[E revItem[E]](e E, hi, lo uint64) bool { h, l := e.key(); return h == hi && l == lo }

// rev6 is a name of an IPv6 address.
type rev6 struct {
	hi, lo uint64
	ref    ptrRef
}

func revShard(hi, lo uint64) int {
	h := (hi ^ lo ^ lo>>29) * 0x9E3779B97F4A7C15
	return int(h >> 55) // top 9 bits: 512 shards
}

func compareKey[E revItem[E]](e E, hi, lo uint64) int {
	h, l := e.key()
	if c := cmp.Compare(h, hi); c != 0 {
		return c
	}
	return cmp.Compare(l, lo)
}

func compareEntries[E revItem[E]](a, b E) int {
	hi, lo := b.key()
	if c := compareKey(a, hi, lo); c != 0 {
		return c
	}
	return compareRefs(a.name(), b.name())
}

// compareRefs orders the names of one address by namespace and service, so
// that answers do not depend on the order services were indexed in.
func compareRefs(a, b ptrRef) int {
	if c := strings.Compare(a.svc.Namespace, b.svc.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.svc.Name, b.svc.Name)
}

// run returns the bounds of the entries of an address in a shard.
func run[E revItem[E]](sh []E, hi, lo uint64) (int, int) {
	start, end := 0, len(sh)
	for start < end {
		m := int(uint(start+end) >> 1)
		if compareKey(sh[m], hi, lo) < 0 {
			start = m + 1
		} else {
			end = m
		}
	}
	end = start
	for end < len(sh) && sameKey(sh[end], hi, lo) {
		end++
	}
	return start, end
}

func (t *revTable[E]) lookup(hi, lo uint64) []E {
	sh := t.shard(revShard(hi, lo))
	start, end := run(sh, hi, lo)
	return sh[start:end]
}

// revNames is the view of an address's names in the index (do not modify).
type revNames struct {
	v4 []rev4
	v6 []rev6
}

func (n revNames) len() int { return len(n.v4) + len(n.v6) }

func (n revNames) at(i int) ptrRef {
	if i < len(n.v4) {
		return n.v4[i].name()
	}
	return n.v6[i-len(n.v4)].name()
}

// lookup returns the names of an address, none when it has none.
func (r *revIndex) lookup(a [16]byte) revNames {
	hi, lo := revKey(a)
	if isRev4(hi, lo) {
		return revNames{v4: r.v4.lookup(hi, lo)}
	}
	return revNames{v6: r.v6.lookup(hi, lo)}
}

// Len returns the number of addresses with names.
func (r *revIndex) Len() int { return r.size }

// revBuilder fills a new revIndex in bulk: entries are appended, then each
// shard sorted once.
type revBuilder struct {
	r          revIndex
	own4, own6 [revPages]bool
}

func (b *revBuilder) add(a [16]byte, ref ptrRef) {
	hi, lo := revKey(a)
	s := revShard(hi, lo)
	if isRev4(hi, lo) {
		b.r.v4.ownPage(s, &b.own4)
		b.r.v4.setShard(s, append(b.r.v4.shard(s), rev4{}.make(hi, lo, ref)))
	} else {
		b.r.v6.ownPage(s, &b.own6)
		b.r.v6.setShard(s, append(b.r.v6.shard(s), rev6{}.make(hi, lo, ref)))
	}
}

func (b *revBuilder) done() *revIndex {
	b.r.size = b.r.v4.sort() + b.r.v6.sort()
	return &b.r
}

// sort orders every shard and returns the number of addresses.
func (t *revTable[E]) sort() int {
	n := 0
	for i, sh := range t.shards {
		if len(sh) == 0 {
			continue
		}
		slices.SortFunc(sh, compareEntries[E])
		for j := range sh {
			if hi, lo := sh[j].key(); j == 0 || !sameKey(sh[j-1], hi, lo) {
				n++
			}
		}
		t.setShard(i, slices.Clone(sh)) // at its size: appending left up to twice that
	}
	return n
}

// revEditor builds the next version of a revIndex from a published one,
// which stays valid and unchanged for readers.
type revEditor struct {
	r                *revIndex
	pages4, pages6   [revPages]bool // pages copied
	copied4, copied6 [revShards]bool
}

func (r *revIndex) edit() *revEditor {
	next := *r
	return &revEditor{r: &next}
}

// replace drops the name of service k at address a, and adds ref (when
// not nil) in its place.
func (e *revEditor) replace(a [16]byte, k registry.Key, ref *ptrRef) {
	hi, lo := revKey(a)
	if isRev4(hi, lo) {
		e.r.size += replaceIn(&e.r.v4, &e.pages4, &e.copied4, hi, lo, k, ref)
	} else {
		e.r.size += replaceIn(&e.r.v6, &e.pages6, &e.copied6, hi, lo, k, ref)
	}
}

// replaceIn is replace in one table; it returns the change of the number
// of addresses (-1, 0 or 1).
func replaceIn[E revItem[E]](t *revTable[E], pages *[revPages]bool, copied *[revShards]bool, hi, lo uint64, k registry.Key, ref *ptrRef) int {
	s := revShard(hi, lo)
	sh := t.shard(s)
	start, end := run(sh, hi, lo)
	had := end > start
	i := slices.IndexFunc(sh[start:end], func(x E) bool { return x.name().svc.Key == k })
	if i < 0 && ref == nil {
		return 0
	}
	if !copied[s] {
		t.ownPage(s, pages)
		sh = slices.Clone(sh)
		copied[s] = true
	}
	if i >= 0 {
		sh = slices.Delete(sh, start+i, start+i+1)
		end--
	}
	if ref != nil {
		at := start
		for at < end && compareRefs(sh[at].name(), *ref) < 0 {
			at++
		}
		var zero E
		sh = slices.Insert(sh, at, zero.make(hi, lo, *ref))
		end++
	}
	t.setShard(s, sh)
	switch has := end > start; {
	case has && !had:
		return 1
	case had && !has:
		return -1
	}
	return 0
}

func (e *revEditor) done() *revIndex { return e.r }

// anyIn reports whether some address in p has names. Each shard is sorted
// by address, so that is one binary search per shard (512 of them, about
// 4,000 comparisons with 100,000 endpoints) for the first address at or
// after p's first: only questions for partial reverse names inside a
// configured reverse zone call it.
func (r *revIndex) anyIn(p netip.Prefix) bool {
	p = p.Masked()
	first := p.Addr().As16()
	last := first
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96 // the 4-in-6 form the keys use
	}
	for i := bits; i < 128; i++ {
		last[i/8] |= 1 << (7 - i%8)
	}
	fhi, flo := revKey(first)
	lhi, llo := revKey(last)
	if p.Addr().Is4() {
		return anyInTable(&r.v4, fhi, flo, lhi, llo)
	}
	return anyInTable(&r.v6, fhi, flo, lhi, llo)
}

// anyInTable reports whether t holds an address from (fhi, flo) to (lhi,
// llo), both included.
func anyInTable[E revItem[E]](t *revTable[E], fhi, flo, lhi, llo uint64) bool {
	for _, sh := range t.shards {
		i, _ := slices.BinarySearchFunc(sh, struct{}{}, func(e E, _ struct{}) int {
			return compareKey(e, fhi, flo)
		})
		if i < len(sh) && compareKey(sh[i], lhi, llo) <= 0 {
			return true
		}
	}
	return false
}
