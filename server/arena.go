package server

import (
	"unsafe"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/dnswire"
)

// arena hands out the small pieces that a full index build keeps (nodes,
// their rrset lists, answers' wire bytes, name keys) from blocks of 48 to
// 64 KiB. Allocated one by one they would lie among the build's far larger
// garbage (records, maps, pack buffers) and keep most of its pages in use
// after it is collected; from blocks, the garbage's pages are freed whole.
// A nil *arena allocates each piece on its own (incremental updates, whose
// few pieces are not worth a block).
//
// Handed-out bytes are never written again, so keys may be strings over
// them. A block lives as long as any piece of it does, and so does what
// its pieces point at: pieces that point at a service's entry (the live
// answers' sources, and the nodes and rrset lists that hold them) are
// never taken from a block, or a changed service's first entry would stay
// in memory with its endpoints for as long as the block does.
//
// Invariants (arena_test.go): a piece is never handed out twice nor moved
// (a full block is replaced by a new one, never grown, so pointers into it
// stay the only holders of their piece); copies are capped (cap == len),
// so an append to one reallocates rather than overwrite its neighbour; a
// block is at most 64 KiB, whatever the size of its type grows to.
type arena struct {
	bytes  []byte
	nodes  []node
	rrsets []rrset
}

// arenaNew returns a zeroed T from the block *chunk (a new block of n when
// it is full), or a T of its own with a nil arena.
func arenaNew[T any](a *arena, chunk *[]T, n int) *T {
	if a == nil {
		return new(T)
	}
	if len(*chunk) == cap(*chunk) {
		*chunk = make([]T, 0, n)
	}
	*chunk = (*chunk)[:len(*chunk)+1]
	return &(*chunk)[len(*chunk)-1]
}

const (
	arenaBytes  = 64 << 10
	arenaNodes  = 1024 // 48 KiB
	arenaRRsets = 1024 // 48 KiB
)

// copyBytes returns a copy of b that is never written again.
func (a *arena) copyBytes(b []byte) []byte {
	if a == nil || len(b) > arenaBytes/16 {
		return append([]byte(nil), b...)
	}
	if cap(a.bytes)-len(a.bytes) < len(b) {
		a.bytes = make([]byte, 0, arenaBytes)
	}
	off := len(a.bytes)
	a.bytes = append(a.bytes, b...)
	return a.bytes[off:len(a.bytes):len(a.bytes)]
}

// wireName packs a presentation name into lower-case wire form, the key
// of the names map.
func (a *arena) wireName(name string) (string, error) {
	if a == nil {
		return nameToWire(name)
	}
	var buf [maxNameWire + 1]byte
	n, err := dns.PackDomainName(dns.Fqdn(dnswire.LowerString(name)), buf[:], 0, nil, false)
	if err != nil {
		return "", err
	}
	b := a.copyBytes(buf[:n])
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}

func (a *arena) node() *node {
	if a == nil {
		return &node{}
	}
	return arenaNew(a, &a.nodes, arenaNodes)
}

// srvSource, addrSource and hostIndex return zeroed values for a service's
// index entries. They point at the service's entry, so they never come
// from a block: an old one there would keep the entry (its endpoints and
// slices) reachable after the service changed, for as long as the block
// lives.
func (*arena) srvSource() *srvSource {
	return &srvSource{}
}

func (*arena) addrSource() *addrSource {
	return &addrSource{}
}

func (*arena) hostIndex() *hostIndex {
	return &hostIndex{}
}

// rrsetList returns a copy of rs, which the caller no longer modifies.
func (a *arena) rrsetList(rs []rrset) []rrset {
	if a == nil || len(rs) > arenaRRsets/16 {
		return append([]rrset(nil), rs...)
	}
	if cap(a.rrsets)-len(a.rrsets) < len(rs) {
		a.rrsets = make([]rrset, 0, arenaRRsets)
	}
	off := len(a.rrsets)
	a.rrsets = append(a.rrsets, rs...)
	return a.rrsets[off:len(a.rrsets):len(a.rrsets)]
}
