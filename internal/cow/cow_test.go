package cow

import (
	"fmt"
	"maps"
	"testing"
)

// An edit leaves the version it started from unchanged, shares what it did
// not touch, and reads like a plain map.
func TestEditKeepsThePreviousVersion(t *testing.T) {
	want := map[string]int{}
	m := New[string, int]()
	if _, ok := m.Get("x"); ok || m.Len() != 0 {
		t.Fatal("a new map is not empty")
	}
	ed := m.Edit()
	for i := range 5000 {
		k := fmt.Sprintf("key-%d", i)
		ed.Set(k, i)
		want[k] = i
	}
	v1 := ed.Done()
	if got := maps.Collect(v1.All()); !maps.Equal(got, want) || v1.Len() != len(want) {
		t.Fatalf("first version: %d keys (Len %d), want %d", len(got), v1.Len(), len(want))
	}
	if m.Len() != 0 || len(maps.Collect(m.All())) != 0 {
		t.Fatal("the empty map changed")
	}

	ed = v1.Edit()
	ed.Set("key-1", -1)
	ed.Set("new", 7)
	ed.Delete("key-2")
	ed.Delete("absent")
	v2 := ed.Done()
	if v, _ := v1.Get("key-1"); v != 1 {
		t.Fatalf("v1 key-1 = %d after editing v2", v)
	}
	if _, ok := v1.Get("new"); ok {
		t.Fatal("v1 sees v2's new key")
	}
	if _, ok := v1.Get("key-2"); !ok {
		t.Fatal("v1 lost the key v2 deleted")
	}
	if v, _ := v2.Get("key-1"); v != -1 {
		t.Fatalf("v2 key-1 = %d", v)
	}
	if v, ok := GetBytes(v2, []byte("new")); !ok || v != 7 {
		t.Fatalf("v2 new = %d, %v", v, ok)
	}
	if _, ok := v2.Get("key-2"); ok {
		t.Fatal("v2 still has the deleted key")
	}
	if v2.Len() != len(want) || len(maps.Collect(v2.All())) != len(want) {
		t.Fatalf("v2 Len %d, want %d", v2.Len(), len(want))
	}
	if v1.Len() != len(want) || len(maps.Collect(v1.All())) != len(want) {
		t.Fatalf("v1 Len %d after editing v2, want %d", v1.Len(), len(want))
	}
	shared := 0
	for p := range v1.pages {
		if v1.pages[p] == v2.pages[p] {
			shared++
		}
	}
	if shared < pages-3 { // three keys changed: at most three pages copied
		t.Fatalf("v2 shares %d of %d pages with v1", shared, pages)
	}
}
