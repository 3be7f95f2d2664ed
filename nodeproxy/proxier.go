package nodeproxy

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/clusterdns/clusterdns/internal/pages"
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
	// NewNFT, when set, replaces NFT after each full sync: knftables
	// keeps the text buffer of its largest transaction for good, and the
	// full sync's is the whole table (tens of MB at 10,000 services).
	NewNFT func() (knftables.Interface, error)
	// Elements, when set, writes the elements of the shared sets and maps
	// in a batch of their own (NetlinkElements on a node: no nft process
	// and no 20 MB of text for them); nil writes them into the nft
	// transaction with everything else (see Proxier.apply).
	Elements ElementWriter
	// Conntrack deletes stale UDP flows after an endpoint goes away; nil
	// skips that (tests of the rules alone).
	Conntrack Conntrack
	// NodeName selects the local endpoints of the Local traffic policies;
	// empty treats such services as Cluster.
	NodeName string
	// Zone is the topology.kubernetes.io/zone label of this node, for the
	// endpoints' zone hints; SetZone changes it. Empty ignores zone hints.
	Zone string
	// ClusterCIDRs are the pods' address ranges: their traffic to the
	// external addresses of a Local-policy service may use every endpoint.
	ClusterCIDRs []netip.Prefix
	// NodePortAddresses restricts NodePorts (and their rejects) to these
	// node address ranges; nil means every local address but loopback.
	NodePortAddresses []netip.Prefix
	// Health receives the local endpoint counts of the services with a
	// healthCheckNodePort after each sync; nil serves none.
	Health *ServiceHealth
	// MasqueradeBit is the packet-mark bit that asks for masquerading of
	// NodePort traffic (kube-proxy's default, 14, when 0).
	MasqueradeBit int
	// Metrics receives the sync metrics; nil records none.
	Metrics *Metrics
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// ReleaseStartupPages, after the first successful full sync, gives the
	// kernel back the executable's pages that only starting up touched
	// (pages.ReleaseStartupPages): the command sets it, tests need not.
	ReleaseStartupPages bool
	// GCPercent, when positive, is the Go GC target (debug.SetGCPercent)
	// the Proxier sets after each full sync: low, as the heap is then
	// mostly the long-lived model. During a full sync it is raised to
	// FullSyncGCPercent (its garbage is large and short-lived: a low
	// target would collect dozens of times). Zero leaves the GC alone.
	// It is the process's setting: only the command sets it.
	GCPercent int
	// Trimmer is told of every partial sync (Changed), so that it returns
	// their garbage to the OS once changes settle; nil: nothing is told.
	Trimmer *pages.SettleTrimmer
}

// FullSyncGCPercent is the Go GC target during a full sync when
// ProxierConfig.GCPercent is set (Go's default).
const FullSyncGCPercent = 100

// Proxier writes a snapshot's services as nftables rules. It keeps the
// ports it last wrote (compact: addresses and endpoint lists, not rule
// objects, which it regenerates when it needs them), so that a partial
// Sync rewrites only the elements, chains and sets of the services named
// as changed (in one nft transaction, or in apply's steps with an
// ElementWriter). Its methods are safe for concurrent use but serialize:
// one Sync at a time.
type Proxier struct {
	nft     knftables.Interface
	newNFT  func() (knftables.Interface, error)
	elems   ElementWriter
	ct      Conntrack
	log     *slog.Logger
	metrics *Metrics
	table   tableConfig
	health  *ServiceHealth
	// releasePages: ReleaseStartupPages was asked for and not done yet.
	releasePages bool
	gcPercent    int
	trimmer      *pages.SettleTrimmer

	mu     sync.Mutex
	node   node
	synced bool // the last full sync succeeded and nothing failed since
	// recreate: a full sync in steps failed, so the next one recreates
	// the table in one nft transaction (see apply).
	recreate bool
	// groupChains are the group chains in the kernel, used or not: with an
	// ElementWriter an unused one stays until the next full sync, so that
	// a service whose endpoint count flips needs no nft process.
	groupChains map[string]bool
	ports       map[registry.Key][]*servicePort
	groups      map[string]int // group chain → ports that use it
	hairpin     hairpinRefs
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
		nft:          cfg.NFT,
		newNFT:       cfg.NewNFT,
		elems:        cfg.Elements,
		ct:           cfg.Conntrack,
		log:          log,
		metrics:      cfg.Metrics,
		node:         node{Name: cfg.NodeName, Zone: cfg.Zone},
		health:       cfg.Health,
		releasePages: cfg.ReleaseStartupPages,
		gcPercent:    cfg.GCPercent,
		trimmer:      cfg.Trimmer,
		table: tableConfig{
			masqMark:      fmt.Sprintf("0x%x", uint32(1)<<bit),
			clusterCIDRs:  cfg.ClusterCIDRs,
			nodePortAddrs: cfg.NodePortAddresses,
		},
		ports:   map[registry.Key][]*servicePort{},
		groups:  map[string]int{},
		hairpin: newHairpinRefs(),
	}
}

// SyncResult describes one Sync.
type SyncResult struct {
	Full       bool          // the whole table was rewritten
	Services   int           // services looked at
	Operations int           // nft commands and batch operations (flushes, element deletes and adds)
	Took       time.Duration // building, nft and conntrack cleanup
}

// Sync brings the kernel in line with snap. With full set (or before a
// full sync has succeeded) it rewrites the whole table; otherwise it
// rewrites only the services in changed (see apply for the transactions).
// It blocks for nft, the kernel (and the conntrack commands, after them).
// On error the table stays consistent and forwarding (each step is
// atomic) and the next Sync is full whatever it asks.
func (p *Proxier) Sync(ctx context.Context, snap *registry.Snapshot, changed []registry.Key, full bool) (SyncResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := time.Now()
	full = full || !p.synced
	res := SyncResult{Full: full}
	if full && p.gcPercent > 0 {
		debug.SetGCPercent(FullSyncGCPercent)
		defer debug.SetGCPercent(p.gcPercent)
	}

	// next holds only what this sync changes (copying the whole state
	// would make a one-service sync cost as much as the cluster).
	next := &syncState{
		health:  map[registry.Key]hcState{},
		ports:   map[registry.Key][]*servicePort{},
		groups:  map[string]int{},
		hairpin: newHairpinRefs(),
	}
	b := txBuilder{masqMark: p.table.masqMark}
	var stream *elementStream
	if full && p.elems != nil && !p.recreate {
		var err error
		if stream, err = p.streamElements(&b); err != nil {
			p.synced = false
			res.Took = time.Since(start)
			p.metrics.observe(res, err)
			return res, err
		}
	}
	var stale []staleFlow
	if full {
		keys := make(map[registry.Key]bool, snap.ServiceCount()+len(p.ports))
		for e := range snap.Services() {
			keys[e.Key] = true
		}
		// A change of the clusterset makes the snapshot Full: imports are
		// only ever written here.
		for _, k := range importKeys(snap.ClusterSet()) {
			keys[k] = true
		}
		for k := range p.ports {
			keys[k] = true
		}
		// In key order, so that the transaction reads the same every time
		// without sorting its 200,000 elements (see txBuilder.flush).
		order := slices.SortedFunc(maps.Keys(keys), func(a, b registry.Key) int {
			return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
		})
		for _, k := range order {
			stale = append(stale, p.updateService(next, &b, snap, k, true)...)
		}
		res.Services = len(keys)
	} else {
		for _, k := range changed {
			stale = append(stale, p.updateService(next, &b, snap, k, false)...)
		}
		res.Services = len(changed)
	}
	b.hairpin(p.hairpin.changes(next.hairpin, full))
	b.groupChanges(countChanges(p.groups, next.groups, full))
	ops, err := p.apply(ctx, &b, full, stream)
	res.Operations = ops
	if err != nil {
		p.synced = false
		res.Took = time.Since(start)
		p.metrics.observe(res, err)
		return res, err
	}
	p.synced = true
	if full {
		p.ports = map[registry.Key][]*servicePort{}
	}
	for k, v := range next.ports {
		if v == nil {
			delete(p.ports, k)
		} else {
			p.ports[k] = v
		}
	}
	p.groups = applyDelta(p.groups, next.groups, full)
	p.hairpin = p.hairpin.apply(next.hairpin, full)

	if p.health != nil {
		if full {
			for _, k := range p.health.keys() {
				if _, ok := next.health[k]; !ok {
					p.health.Set(k, 0, 0)
				}
			}
		}
		for k, h := range next.health {
			p.health.Set(k, h.port, h.local)
		}
	}
	if full {
		p.releaseFullSync()
	} else if p.trimmer != nil && res.Operations > 0 {
		p.trimmer.Changed()
	}
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
	health  map[registry.Key]hcState
	ports   map[registry.Key][]*servicePort
	groups  map[string]int
	hairpin hairpinRefs
}

// updateService computes the new ports of service k, writes their
// difference from what was applied into b and next, and returns the UDP
// flows to forget once the transaction has landed. With full set the
// previous objects are taken as absent (the table is recreated) but the
// previous slots are kept.
func (p *Proxier) updateService(next *syncState, b *txBuilder, snap *registry.Snapshot, k registry.Key, full bool) []staleFlow {
	old := p.ports[k]
	var want []*servicePort
	if imp, ok := importOf(k); ok {
		want = importPorts(snap.ClusterSet().Entry(imp))
	} else {
		entry := snap.Service(k)
		var skipped []string
		want, skipped = servicePorts(entry, p.node)
		next.health[k] = healthOf(entry, want)
		for _, why := range skipped {
			p.log.Warn("service entry skipped", "service", k.String(), "reason", why)
		}
	}
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
			w.ClusterEndpoints = assignSlots(o.ClusterEndpoints, w.ClusterEndpoints)
			w.LocalEndpoints = assignSlots(o.LocalEndpoints, w.LocalEndpoints)
		}
		if slices.Equal(w.Endpoints, w.ClusterEndpoints) {
			w.Endpoints = w.ClusterEndpoints // one list kept, not two
		}
		newIDs[w.ID] = true
		// What was written is regenerated from the port as it was, rather
		// than kept: the rule objects of every port would cost far more
		// memory than the ports themselves.
		var prev *portObjects
		if !full && o != nil {
			prev = o.objects(p.table.masqMark)
		}
		objs := w.objects(p.table.masqMark)
		b.diff(prev, objs)
		b.countGroups(next.groups, objs, 1)
		if prev != nil {
			b.countGroups(next.groups, prev, -1)
		}
		next.hairpin.add(w, 1)
		if o != nil {
			if !full {
				next.hairpin.add(o, -1)
			}
			stale = append(stale, staleFlows(o, w)...)
		}
	}
	for _, o := range old {
		if newIDs[o.ID] {
			continue
		}
		if !full {
			was := o.objects(p.table.masqMark)
			b.diff(was, nil)
			b.countGroups(next.groups, was, -1)
			next.hairpin.add(o, -1)
		}
		stale = append(stale, staleFlows(o, nil)...)
	}
	next.ports[k] = want // nil: gone
	return stale
}

// releaseFullSync gives back what only the full sync needed: the
// knftables buffer that held its transaction (a fresh interface, when
// NewNFT is set) and the garbage of building it, returned to the kernel
// at once so that the resident size reflects the steady state.
func (p *Proxier) releaseFullSync() {
	if p.newNFT != nil {
		if nft, err := p.newNFT(); err != nil {
			p.log.Warn("fresh nftables interface not made; keeping the old one", "err", err)
		} else {
			p.nft = nft
		}
	}
	debug.FreeOSMemory()
	if p.releasePages {
		p.releasePages = false
		n, err := pages.ReleaseStartupPages()
		if err != nil {
			p.log.Debug("startup pages kept", "err", err)
		} else {
			p.log.Debug("startup pages released", "mappedBytes", n)
		}
	}
}

// SetZone changes this node's topology zone; the next sync must be a full
// one (the caller asks the Tracker for it) for the rules to follow.
func (p *Proxier) SetZone(zone string) {
	p.mu.Lock()
	p.node.Zone = zone
	p.mu.Unlock()
}

// countChanges lists the keys whose count goes from zero to positive
// (added) and from positive to zero (removed) when delta is added to
// before (to nothing with full). It changes nothing.
func countChanges[K comparable, N int | int32](before, delta map[K]N, full bool) (added, removed []K) {
	for k, d := range delta {
		var was N
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
func applyDelta[K comparable, N int | int32](before, delta map[K]N, full bool) map[K]N {
	after := before
	if full {
		after = make(map[K]N, len(delta))
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
