package nodeproxy

import (
	"net/netip"
	"slices"
	"strings"

	"sigs.k8s.io/knftables"
)

// txBuilder collects a sync's operations by phase, so that everything is
// created before it is referenced and unreferenced before it is deleted.
type txBuilder struct {
	masqMark    string
	groups      map[string]group // every group counted in this sync
	newGroups   []group
	addSets     []*knftables.Set
	writeChains map[string][]string // chains to create or rewrite
	delElems    []*knftables.Element
	addElems    []*knftables.Element
	delChains   []string
	delGroups   []string // group chains no longer used
	delSets     []string
	// sink, when set, takes the elements to add that it accepts (true)
	// instead of addElems: a full sync's go to the ElementWriter's stream
	// as they are made.
	sink func(e *knftables.Element) bool
}

// diff records what turns prev into next (either may be nil).
func (b *txBuilder) diff(prev, next *portObjects) {
	if prev == nil {
		prev = &portObjects{}
	}
	if next == nil {
		next = &portObjects{}
	}
	for _, name := range sortedKeys(next.Sets) {
		if _, ok := prev.Sets[name]; !ok {
			b.addSets = append(b.addSets, next.Sets[name])
		}
	}
	for _, name := range sortedKeys(next.Chains) {
		if old, ok := prev.Chains[name]; !ok || !slices.Equal(old, next.Chains[name]) {
			if b.writeChains == nil {
				b.writeChains = map[string][]string{}
			}
			b.writeChains[name] = next.Chains[name]
		}
	}
	// Each port's elements sorted (a handful), so that a full sync needs
	// no sort of them all.
	from := len(b.delElems)
	for ref, e := range prev.Elems {
		if n, ok := next.Elems[ref]; !ok || !sameElement(e, n) {
			b.delElems = append(b.delElems, e)
		}
	}
	sortElems(b.delElems[from:])
	from = len(b.addElems)
	for ref, e := range next.Elems {
		if o, ok := prev.Elems[ref]; !ok || !sameElement(o, e) {
			if b.sink == nil || !b.sink(e) {
				b.addElems = append(b.addElems, e)
			}
		}
	}
	sortElems(b.addElems[from:])
	for _, name := range sortedKeys(prev.Chains) {
		if _, ok := next.Chains[name]; !ok {
			b.delChains = append(b.delChains, name)
		}
	}
	for _, name := range sortedKeys(prev.Sets) {
		if _, ok := next.Sets[name]; !ok {
			b.delSets = append(b.delSets, name)
		}
	}
}

func sameElement(a, b *knftables.Element) bool {
	return slices.Equal(a.Value, b.Value) && ((a.Comment == nil) == (b.Comment == nil)) &&
		(a.Comment == nil || *a.Comment == *b.Comment)
}

// countGroups adds delta to the use counts of the groups of o.
func (b *txBuilder) countGroups(counts map[string]int, o *portObjects, delta int) {
	if b.groups == nil {
		b.groups = map[string]group{}
	}
	for _, g := range o.Groups {
		b.groups[g.name()] = g
		counts[g.name()] += delta
	}
}

// groupChanges records the group chains to create (first use) and delete
// (last use gone), as countChanges found them.
func (b *txBuilder) groupChanges(added, removed []string) {
	for _, name := range added {
		b.newGroups = append(b.newGroups, b.groups[name])
	}
	slices.Sort(removed)
	b.delGroups = append(b.delGroups, removed...)
}

// hairpin records the hairpin elements to add and delete.
func (b *txBuilder) hairpin(added, removed []netip.Addr) {
	slices.SortFunc(added, netip.Addr.Compare)
	slices.SortFunc(removed, netip.Addr.Compare)
	elem := func(a netip.Addr) *knftables.Element {
		return &knftables.Element{Set: hairpinSet(familyOf(a)), Key: []string{a.String(), a.String()}}
	}
	for _, a := range added {
		if e := elem(a); b.sink == nil || !b.sink(e) {
			b.addElems = append(b.addElems, e)
		}
	}
	for _, a := range removed {
		b.delElems = append(b.delElems, elem(a))
	}
}

// flush writes the collected operations into tx, in an order that keeps
// every reference valid and the output deterministic (for the golden
// tests): the whole sync in one transaction, elements included.
func (b *txBuilder) flush(tx *knftables.Transaction, full bool) {
	b.flushCreations(tx, false)
	del, add := b.orderedElems(full)
	for _, e := range del {
		tx.Delete(&knftables.Element{Set: e.Set, Map: e.Map, Key: e.Key})
	}
	for _, e := range add {
		tx.Add(e)
	}
	b.flushDeletions(tx)
}

// flushCreations writes the group chains, sets and chains to create or
// rewrite. With refresh, a group chain may already exist (a full sync
// over the table in place) and is flushed before its rules are added.
func (b *txBuilder) flushCreations(tx *knftables.Transaction, refresh bool) {
	slices.SortFunc(b.newGroups, func(x, y group) int { return strings.Compare(x.name(), y.name()) })
	for _, g := range b.newGroups {
		tx.Add(&knftables.Chain{Name: g.name()})
		if refresh {
			tx.Flush(&knftables.Chain{Name: g.name()})
		}
		for _, r := range g.rules(b.masqMark) {
			tx.Add(&knftables.Rule{Chain: g.name(), Rule: r})
		}
	}
	slices.SortFunc(b.addSets, func(x, y *knftables.Set) int { return strings.Compare(x.Name, y.Name) })
	for _, s := range b.addSets {
		tx.Add(s)
	}
	// Every chain exists before any rule: rules jump between them.
	for _, name := range sortedKeys(b.writeChains) {
		tx.Add(&knftables.Chain{Name: name})
	}
	for _, name := range sortedKeys(b.writeChains) {
		tx.Flush(&knftables.Chain{Name: name})
		for _, r := range b.writeChains[name] {
			tx.Add(&knftables.Rule{Chain: name, Rule: r})
		}
	}
}

// orderedElems returns the elements to delete and to add. A partial sync's
// are sorted by set and key; a full sync's are grouped by set, each set's
// in the order they were recorded (services in key order, each port's
// sorted): sorting all 210,000 of 10,000 services took a quarter of the
// full sync's Go time.
func (b *txBuilder) orderedElems(full bool) (del, add []*knftables.Element) {
	order := sortElems
	if full {
		order = groupElems
	}
	order(b.delElems)
	order(b.addElems)
	return b.delElems, b.addElems
}

// flushDeletions writes the chains and sets to delete, once nothing
// refers to them any more.
func (b *txBuilder) flushDeletions(tx *knftables.Transaction) {
	for _, c := range b.delChains {
		tx.Delete(&knftables.Chain{Name: c})
	}
	for _, c := range b.delGroups {
		tx.Delete(&knftables.Chain{Name: c})
	}
	for _, s := range b.delSets {
		tx.Delete(&knftables.Set{Name: s})
	}
}

func sortElems(es []*knftables.Element) {
	// Sorted by set (or map) name, then key; the comparison allocates
	// nothing, as it runs millions of times in a full sync.
	slices.SortFunc(es, func(x, y *knftables.Element) int {
		if c := strings.Compare(elemSet(x), elemSet(y)); c != 0 {
			return c
		}
		return slices.Compare(x.Key, y.Key)
	})
}

// groupElems orders es by set (or map) name, keeping the order within a
// set: a stable sort on one string, cheap where sortElems is not.
func groupElems(es []*knftables.Element) {
	slices.SortStableFunc(es, func(x, y *knftables.Element) int {
		return strings.Compare(elemSet(x), elemSet(y))
	})
}

// elemSet is the set or map an element belongs to (one of the two is set).
func elemSet(e *knftables.Element) string {
	if e.Set != "" {
		return e.Set
	}
	return e.Map
}
