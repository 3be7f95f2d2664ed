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

// shards is the number of shards: an edit copies the 8 KiB array of shard
// pointers plus every touched shard (about 1/1024 of the keys each).
const shards = 1024

// Key is what a Map is keyed by: a string, or the 16 bytes of an address
// (netip.Addr.As16), which cost no allocation of their own.
type Key interface{ ~string | ~[16]byte }

// Map is an immutable sharded map. The zero value is not usable; use New.
// Readers may use a Map from any goroutine without locks.
type Map[K Key, V any] struct {
	shards [shards]map[K]V
	size   int
}

// New returns an empty map.
func New[K Key, V any]() *Map[K, V] {
	m := &Map[K, V]{}
	for i := range m.shards {
		m.shards[i] = map[K]V{}
	}
	return m
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
	v, ok := m.shards[shardOf(key)][string(key)]
	return v, ok
}

// Get looks a key up.
func (m *Map[K, V]) Get(key K) (V, bool) {
	v, ok := m.shards[shardOf(key)][key]
	return v, ok
}

// Len returns the number of keys.
func (m *Map[K, V]) Len() int { return m.size }

// All iterates over every key and value in no particular order.
func (m *Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for i := range m.shards {
			for k, v := range m.shards[i] {
				if !yield(k, v) {
					return
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
	copied [shards]bool
}

// Edit starts a new version of m.
func (m *Map[K, V]) Edit() *Editor[K, V] {
	next := *m // copies the array of shard pointers
	return &Editor[K, V]{m: &next}
}

func (e *Editor[K, V]) shard(key K) map[K]V {
	s := shardOf(key)
	if !e.copied[s] {
		e.m.shards[s] = maps.Clone(e.m.shards[s])
		if e.m.shards[s] == nil {
			e.m.shards[s] = map[K]V{}
		}
		e.copied[s] = true
	}
	return e.m.shards[s]
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
