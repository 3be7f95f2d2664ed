// Package cow provides Map, a string-keyed map split into shards that is
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

// Map is an immutable sharded map. The zero value is not usable; use New.
// Readers may use a Map from any goroutine without locks.
type Map[V any] struct {
	shards [shards]map[string]V
	size   int
}

// New returns an empty map.
func New[V any]() *Map[V] {
	m := &Map[V]{}
	for i := range m.shards {
		m.shards[i] = map[string]V{}
	}
	return m
}

// shardOf is FNV-1a over the key's bytes, folded to the shard count.
func shardOf[K string | []byte](key K) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int((h ^ h>>16) % shards)
}

// GetBytes looks a key up by its bytes without allocating.
func (m *Map[V]) GetBytes(key []byte) (V, bool) {
	v, ok := m.shards[shardOf(key)][string(key)]
	return v, ok
}

// Get looks a key up.
func (m *Map[V]) Get(key string) (V, bool) {
	v, ok := m.shards[shardOf(key)][key]
	return v, ok
}

// Len returns the number of keys.
func (m *Map[V]) Len() int { return m.size }

// All iterates over every key and value in no particular order.
func (m *Map[V]) All() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
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
func (m *Map[V]) Values() iter.Seq[V] {
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
type Editor[V any] struct {
	m      *Map[V]
	copied [shards]bool
}

// Edit starts a new version of m.
func (m *Map[V]) Edit() *Editor[V] {
	next := *m // copies the array of shard pointers
	return &Editor[V]{m: &next}
}

func (e *Editor[V]) shard(key string) map[string]V {
	s := shardOf(key)
	if !e.copied[s] {
		e.m.shards[s] = maps.Clone(e.m.shards[s])
		if e.m.shards[s] == nil {
			e.m.shards[s] = map[string]V{}
		}
		e.copied[s] = true
	}
	return e.m.shards[s]
}

// Get reads the version being built.
func (e *Editor[V]) Get(key string) (V, bool) { return e.m.Get(key) }

// Set adds or replaces a key.
func (e *Editor[V]) Set(key string, v V) {
	sh := e.shard(key)
	if _, ok := sh[key]; !ok {
		e.m.size++
	}
	sh[key] = v
}

// Delete removes a key if present.
func (e *Editor[V]) Delete(key string) {
	if _, ok := e.m.Get(key); !ok {
		return
	}
	delete(e.shard(key), key)
	e.m.size--
}

// Done returns the new version; the editor must not be used afterwards.
func (e *Editor[V]) Done() *Map[V] { return e.m }
