package nodeproxy

import (
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
	delSets     []string
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
	for ref, e := range prev.Elems {
		if n, ok := next.Elems[ref]; !ok || !sameElement(e, n) {
			b.delElems = append(b.delElems, e)
		}
	}
	for ref, e := range next.Elems {
		if o, ok := prev.Elems[ref]; !ok || !sameElement(o, e) {
			b.addElems = append(b.addElems, e)
		}
	}
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
	b.delChains = append(b.delChains, removed...)
}

// hairpin records the hairpin elements to add and delete.
func (b *txBuilder) hairpin(added, removed []addrKey) {
	elem := func(k addrKey) *knftables.Element {
		a := k.addr()
		return &knftables.Element{Set: hairpinSet(familyOf(a)), Key: []string{a.String(), a.String()}}
	}
	for _, a := range added {
		b.addElems = append(b.addElems, elem(a))
	}
	for _, a := range removed {
		b.delElems = append(b.delElems, elem(a))
	}
}

// flush writes the collected operations into tx, in an order that keeps
// the output deterministic (for the golden tests) and every reference valid.
func (b *txBuilder) flush(tx *knftables.Transaction) {
	slices.SortFunc(b.newGroups, func(x, y group) int { return strings.Compare(x.name(), y.name()) })
	for _, g := range b.newGroups {
		tx.Add(&knftables.Chain{Name: g.name()})
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
	sortElems(b.delElems)
	for _, e := range b.delElems {
		tx.Delete(&knftables.Element{Set: e.Set, Map: e.Map, Key: e.Key})
	}
	sortElems(b.addElems)
	for _, e := range b.addElems {
		tx.Add(e)
	}
	for _, c := range b.delChains {
		tx.Delete(&knftables.Chain{Name: c})
	}
	for _, s := range b.delSets {
		tx.Delete(&knftables.Set{Name: s})
	}
}

func sortElems(es []*knftables.Element) {
	slices.SortFunc(es, func(x, y *knftables.Element) int {
		xn, yn := x.Set+x.Map, y.Set+y.Map
		if c := strings.Compare(xn, yn); c != 0 {
			return c
		}
		return slices.Compare(x.Key, y.Key)
	})
}
