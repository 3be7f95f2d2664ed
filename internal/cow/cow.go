// Package cow provides Map, a map split into shards that is
// immutable once published: an edit clones only the shards it touches and
// shares the rest with the previous version. The registry's snapshots and
// the server's name index use it so that one change costs what the change
// touches, not what the cluster holds.
package cow

import (
	"iter"
	"maps"
)

// shards is the number of shards, in pages of pageSlots: an edit copies
// the 256-byte array of page pointers, each touched page (256 bytes) and
// each touched shard (about 1/1024 of the keys), so that a change costs
// what it touches whatever the size of the map.
const (
	shards    = 1024
	pages     = 32
	pageSlots = shards / pages
)

// Key is what a Map is keyed by: a string, or the 16 bytes of an address
// (netip.Addr.As16), which cost no allocation of their own.
type Key interface{ ~string | ~[16]byte }

// Map is an immutable sharded map. The zero value is not usable; use New.
// Readers may use a Map from any goroutine without locks.
type Map[K Key, V any] struct {
	pages [pages]*[pageSlots]map[K]V // nil: a page of empty shards
	size  int
}

// New returns an empty map.
func New[K Key, V any]() *Map[K, V] { return &Map[K, V]{} }

// shard returns shard i (nil when empty; do not modify).
func (m *Map[K, V]) shard(i int) map[K]V {
	if p := m.pages[i/pageSlots]; p != nil {
		return p[i%pageSlots]
	}
	return nil
}

// shardOf is FNV-1a over the key's bytes, folded to the shard count.
func shardOf[B ~string | ~[]byte | ~[16]byte](key B) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int((h ^ h>>16) % shards)
}

// GetBytes looks a string key up by its bytes without allocating.
func GetBytes[V any](m *Map[string, V], key []byte) (V, bool) {
	v, ok := m.shard(shardOf(key))[string(key)]
	return v, ok
}

// Get looks a key up.
func (m *Map[K, V]) Get(key K) (V, bool) {
	v, ok := m.shard(shardOf(key))[key]
	return v, ok
}

// Len returns the number of keys.
func (m *Map[K, V]) Len() int { return m.size }

// All iterates over every key and value in no particular order.
func (m *Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for _, p := range m.pages {
			if p == nil {
				continue
			}
			for i := range p {
				for k, v := range p[i] {
					if !yield(k, v) {
						return
					}
				}
			}
		}
	}
}

// Values iterates over every value in no particular order.
func (m *Map[K, V]) Values() iter.Seq[V] {
	return func(yield func(V) bool) {
		for _, v := range m.All() {
			if !yield(v) {
				return
			}
		}
	}
}

// Editor builds the next version of a Map. One goroutine uses it; the map
// it started from stays valid and unchanged for readers.
type Editor[K Key, V any] struct {
	m      *Map[K, V]
	owned  [pages]bool         // pages copied
	copied [shards / 64]uint64 // shards copied (bits)
}

// Edit starts a new version of m.
func (m *Map[K, V]) Edit() *Editor[K, V] {
	next := *m // copies the array of page pointers
	return &Editor[K, V]{m: &next}
}

// shard returns the editor's own copy of key's shard.
func (e *Editor[K, V]) shard(key K) map[K]V {
	s := shardOf(key)
	p := s / pageSlots
	if !e.owned[p] {
		next := new([pageSlots]map[K]V)
		if old := e.m.pages[p]; old != nil {
			*next = *old
		}
		e.m.pages[p] = next
		e.owned[p] = true
	}
	page := e.m.pages[p]
	if e.copied[s/64]&(1<<(s%64)) == 0 {
		page[s%pageSlots] = maps.Clone(page[s%pageSlots])
		if page[s%pageSlots] == nil {
			page[s%pageSlots] = map[K]V{}
		}
		e.copied[s/64] |= 1 << (s % 64)
	}
	return page[s%pageSlots]
}

// Get reads the version being built.
func (e *Editor[K, V]) Get(key K) (V, bool) { return e.m.Get(key) }

// Set adds or replaces a key.
func (e *Editor[K, V]) Set(key K, v V) {
	sh := e.shard(key)
	if _, ok := sh[key]; !ok {
		e.m.size++
	}
	sh[key] = v
}

// Delete removes a key if present.
func (e *Editor[K, V]) Delete(key K) {
	if _, ok := e.m.Get(key); !ok {
		return
	}
	delete(e.shard(key), key)
	e.m.size--
}

// Done returns the new version; the editor must not be used afterwards.
func (e *Editor[K, V]) Done() *Map[K, V] { return e.m }
