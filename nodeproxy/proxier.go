package nodeproxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/clusterdns/clusterdns/registry"
)

// DefaultTable is the name of the node proxy's own nftables table (family
// inet, so that one transaction covers IPv4 and IPv6).
const DefaultTable = "clusterdns-nodeproxy"

// ProxierConfig configures a Proxier.
type ProxierConfig struct {
	// NFT writes the rules: knftables.New(knftables.InetFamily, table) on a
	// node, knftables.NewFake in tests. Required.
	NFT knftables.Interface
	// Conntrack deletes stale UDP flows after an endpoint goes away; nil
	// skips that (tests of the rules alone).
	Conntrack Conntrack
	// NodeName selects the local endpoints of externalTrafficPolicy: Local
	// services; empty treats such services as Cluster.
	NodeName string
	// MasqueradeBit is the packet-mark bit that asks for masquerading of
	// NodePort traffic (kube-proxy's default, 14, when 0).
	MasqueradeBit int
	// Metrics receives the sync metrics; nil records none.
	Metrics *Metrics
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Proxier writes a snapshot's services as nftables rules. It keeps what it
// last wrote, so that a partial Sync rewrites only the elements, chains and
// sets of the services named as changed, in one transaction. Its methods
// are safe for concurrent use but serialize: one Sync at a time.
type Proxier struct {
	nft      knftables.Interface
	ct       Conntrack
	log      *slog.Logger
	metrics  *Metrics
	nodeName string
	masqMark string

	mu      sync.Mutex
	synced  bool // the last full sync succeeded and nothing failed since
	ports   map[registry.Key][]*servicePort
	objs    map[portID]*portObjects
	groups  map[string]int // group chain → ports that use it
	hairpin map[netip.Addr]int
}

// NewProxier returns a Proxier that has written nothing yet: its first Sync
// is a full one.
func NewProxier(cfg ProxierConfig) *Proxier {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	bit := cfg.MasqueradeBit
	if bit <= 0 || bit > 31 {
		bit = 14
	}
	return &Proxier{
		nft:      cfg.NFT,
		ct:       cfg.Conntrack,
		log:      log,
		metrics:  cfg.Metrics,
		nodeName: cfg.NodeName,
		masqMark: fmt.Sprintf("0x%x", uint32(1)<<bit),
		ports:    map[registry.Key][]*servicePort{},
		objs:     map[portID]*portObjects{},
		groups:   map[string]int{},
		hairpin:  map[netip.Addr]int{},
	}
}

// SyncResult describes one Sync.
type SyncResult struct {
	Full       bool          // the whole table was rewritten
	Services   int           // services looked at
	Operations int           // nft commands in the transaction
	Took       time.Duration // building, nft and conntrack cleanup
}

// Sync brings the kernel in line with snap. With full set (or before a
// full sync has succeeded) it rewrites the whole table in one transaction;
// otherwise it rewrites only the services in changed. It blocks for the nft
// transaction (and the conntrack commands, after it). On error nothing of
// the transaction is applied and the next Sync is full whatever it asks.
func (p *Proxier) Sync(ctx context.Context, snap *registry.Snapshot, changed []registry.Key, full bool) (SyncResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := time.Now()
	full = full || !p.synced
	res := SyncResult{Full: full}

	// next holds only what this sync changes (copying the whole state
	// would make a one-service sync cost as much as the cluster).
	next := &syncState{
		ports:   map[registry.Key][]*servicePort{},
		objs:    map[portID]*portObjects{},
		groups:  map[string]int{},
		hairpin: map[netip.Addr]int{},
	}
	tx := p.nft.NewTransaction()
	b := txBuilder{masqMark: p.masqMark}
	var stale []staleFlow
	if full {
		keys := make(map[registry.Key]bool, snap.ServiceCount()+len(p.ports))
		for e := range snap.Services() {
			keys[e.Key] = true
		}
		for k := range p.ports {
			keys[k] = true
		}
		// The table is recreated in the same transaction: packets see the
		// old rules until the commit, then the new ones.
		tx.Add(&knftables.Table{})
		tx.Delete(&knftables.Table{})
		baseObjects(tx, p.masqMark)
		for k := range keys {
			stale = append(stale, p.updateService(next, &b, snap, k, true)...)
		}
		res.Services = len(keys)
	} else {
		for _, k := range changed {
			stale = append(stale, p.updateService(next, &b, snap, k, false)...)
		}
		res.Services = len(changed)
	}
	b.hairpin(countChanges(p.hairpin, next.hairpin, full))
	b.groupChanges(countChanges(p.groups, next.groups, full))
	b.flush(tx)
	res.Operations = tx.NumOperations()

	if res.Operations > 0 {
		if err := p.nft.Run(ctx, tx); err != nil {
			p.synced = false
			res.Took = time.Since(start)
			p.metrics.observe(res, err)
			return res, fmt.Errorf("nftables transaction of %d operations (full=%v): %w", res.Operations, full, err)
		}
	}
	p.synced = true
	if full {
		p.ports, p.objs = map[registry.Key][]*servicePort{}, map[portID]*portObjects{}
	}
	for k, v := range next.ports {
		if v == nil {
			delete(p.ports, k)
		} else {
			p.ports[k] = v
		}
	}
	for k, v := range next.objs {
		if v == nil {
			delete(p.objs, k)
		} else {
			p.objs[k] = v
		}
	}
	p.groups = applyDelta(p.groups, next.groups, full)
	p.hairpin = applyDelta(p.hairpin, next.hairpin, full)

	if p.ct != nil && len(stale) > 0 {
		p.clearStale(ctx, stale)
	}
	res.Took = time.Since(start)
	p.metrics.observe(res, nil)
	p.log.Debug("nftables synced", "full", full, "services", res.Services,
		"operations", res.Operations, "staleUDP", len(stale), "took", res.Took)
	return res, nil
}

// Cleanup deletes the node proxy's table and everything in it. It blocks
// for one nft transaction; a missing table is not an error.
func Cleanup(ctx context.Context, nft knftables.Interface) error {
	tx := nft.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	if err := nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("delete nftables table: %w", err)
	}
	return nil
}

type syncState struct {
	ports   map[registry.Key][]*servicePort
	objs    map[portID]*portObjects
	groups  map[string]int
	hairpin map[netip.Addr]int
}

// updateService computes the new ports of service k, writes their
// difference from what was applied into b and next, and returns the UDP
// flows to forget once the transaction has landed. With full set the
// previous objects are taken as absent (the table is recreated) but the
// previous slots are kept.
func (p *Proxier) updateService(next *syncState, b *txBuilder, snap *registry.Snapshot, k registry.Key, full bool) []staleFlow {
	old := p.ports[k]
	want := servicePorts(snap.Service(k), p.nodeName)
	oldByID := make(map[portID]*servicePort, len(old))
	for _, o := range old {
		oldByID[o.ID] = o
	}
	var stale []staleFlow
	newIDs := map[portID]bool{}
	for _, w := range want {
		o := oldByID[w.ID]
		if o != nil {
			w.Endpoints = assignSlots(o.Endpoints, w.Endpoints)
			w.NodePortEndpoints = assignSlots(o.NodePortEndpoints, w.NodePortEndpoints)
		}
		newIDs[w.ID] = true
		var prev *portObjects
		if !full {
			prev = p.objs[w.ID]
		}
		objs := w.objects(p.masqMark)
		b.diff(prev, objs)
		b.countGroups(next.groups, objs, 1)
		if prev != nil {
			b.countGroups(next.groups, prev, -1)
		}
		next.objs[w.ID] = objs
		addrRefs(next.hairpin, w, 1)
		if o != nil {
			if !full {
				addrRefs(next.hairpin, o, -1)
			}
			stale = append(stale, staleFlows(o, w)...)
		}
	}
	for _, o := range old {
		if newIDs[o.ID] {
			continue
		}
		if !full {
			b.diff(p.objs[o.ID], nil)
			b.countGroups(next.groups, p.objs[o.ID], -1)
			addrRefs(next.hairpin, o, -1)
		}
		next.objs[o.ID] = nil
		stale = append(stale, staleFlows(o, nil)...)
	}
	next.ports[k] = want // nil: gone
	return stale
}

// countChanges lists the keys whose count goes from zero to positive
// (added) and from positive to zero (removed) when delta is added to
// before (to nothing with full). It changes nothing.
func countChanges[K comparable](before, delta map[K]int, full bool) (added, removed []K) {
	for k, d := range delta {
		was := 0
		if !full {
			was = before[k]
		}
		switch is := was + d; {
		case is > 0 && was <= 0:
			added = append(added, k)
		case is <= 0 && was > 0:
			removed = append(removed, k)
		}
	}
	return added, removed
}

// applyDelta returns the counts after adding delta to before (to nothing
// with full). With a partial delta it updates before in place: the few
// changed keys, not a copy of the whole map.
func applyDelta[K comparable](before, delta map[K]int, full bool) map[K]int {
	after := before
	if full {
		after = make(map[K]int, len(delta))
	}
	for k, d := range delta {
		if n := after[k] + d; n > 0 {
			after[k] = n
		} else {
			delete(after, k)
		}
	}
	return after
}

// addrRefs adds delta to the counts of the endpoint addresses of p.
func addrRefs(refs map[netip.Addr]int, p *servicePort, delta int) {
	seen := map[netip.Addr]bool{}
	for _, list := range [][]netip.AddrPort{p.Endpoints, p.NodePortEndpoints} {
		for _, ep := range list {
			a := ep.Addr()
			if seen[a] {
				continue
			}
			seen[a] = true
			refs[a] += delta
		}
	}
}

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
func (b *txBuilder) hairpin(added, removed []netip.Addr) {
	elem := func(a netip.Addr) *knftables.Element {
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
	for _, name := range sortedKeys(b.writeChains) {
		tx.Add(&knftables.Chain{Name: name})
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
