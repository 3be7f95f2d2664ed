package server

import (
	"bytes"
	"fmt"
	"testing"
	"unsafe"
)

// Copies handed out by the arena are never written again: later copies,
// and appends to an earlier one, leave each as it was (the names map keys
// are strings over these bytes).
func TestArenaCopiesStay(t *testing.T) {
	a := &arena{}
	var got [][]byte
	var keys []string
	for i := range 3000 { // several blocks
		b := a.copyBytes(fmt.Appendf(nil, "piece-%04d", i))
		if cap(b) != len(b) {
			t.Fatalf("copy %d not capped: len %d cap %d", i, len(b), cap(b))
		}
		got = append(got, b)
		keys = append(keys, unsafe.String(unsafe.SliceData(b), len(b)))
		_ = append(b, "overwrite"...) // must reallocate, not run into the next piece
	}
	for i, b := range got {
		want := fmt.Sprintf("piece-%04d", i)
		if !bytes.Equal(b, []byte(want)) || keys[i] != want {
			t.Fatalf("piece %d became %q (key %q)", i, b, keys[i])
		}
	}
	rs := a.rrsetList(make([]rrset, 3))
	if cap(rs) != len(rs) {
		t.Fatal("rrset list not capped")
	}
}

// Each piece is handed out once and never moved: writing one leaves all
// the others as they were, across blocks.
func TestArenaPiecesDistinct(t *testing.T) {
	a := &arena{}
	var nodes []*node
	for i := range 3 * arenaNodes {
		n := a.node()
		if n.zone != 0 || n.rrsets != nil {
			t.Fatalf("node %d not zeroed", i)
		}
		n.zone = uint8(i)
		nodes = append(nodes, n)
	}
	seen := map[*node]bool{}
	for i, n := range nodes {
		if seen[n] || n.zone != uint8(i) {
			t.Fatalf("node %d handed out twice or overwritten (zone %d)", i, n.zone)
		}
		seen[n] = true
	}
	var nilArena *arena
	if a, b := nilArena.node(), nilArena.node(); a == b {
		t.Fatal("a nil arena must allocate each piece on its own")
	}
}

// A block is at most 64 KiB whatever its type grows to: a larger one would
// keep more of a build's garbage pages alive than the pieces need.
func TestArenaBlockSizes(t *testing.T) {
	const most = 64 << 10
	for what, size := range map[string]uintptr{
		"bytes":  arenaBytes,
		"nodes":  arenaNodes * unsafe.Sizeof(node{}),
		"rrsets": arenaRRsets * unsafe.Sizeof(rrset{}),
	} {
		if size > most {
			t.Errorf("a block of %s is %d KiB, over 64 KiB: lower its count", what, size>>10)
		}
	}
}
