package nodeproxy

import (
	"context"
	"fmt"
	"slices"

	"sigs.k8s.io/knftables"
)

// apply writes what b collected into the kernel and returns the number of
// operations. Without an ElementWriter, or for a full sync after a failed
// one, it is one nft transaction (a full one recreates the table in it).
// With one, it is up to three steps:
//
//  1. an nft transaction of the creations and rewrites (group, affinity
//     and, in a full sync, base chains; sets; interval-set elements),
//     only when there are any;
//  2. one ElementWriter batch of the element deletes and adds (in a full
//     sync: every shared set and map flushed, then filled);
//  3. an nft transaction of the deletions of chains and sets (in a full
//     sync also whatever the table holds that the sync did not write),
//     only when there are any.
//
// Group chains are the exception: one is created the first time a port
// needs it and left in place when the last one stops (the next full sync
// deletes it), so that an endpoint change is one batch and no nft process
// even when a service's endpoint count moves to a count no other has.
//
// Each step is atomic and leaves the table consistent: nothing refers to
// what step 1 adds before step 2, nothing to what step 3 deletes after
// it. A full sync rewrites the table in place, so the previous rules keep
// forwarding until step 2 swaps every element at once. A failure at any
// step fails the sync; the next full sync then cleans up. It blocks for the
// nft processes and the kernel.
func (p *Proxier) apply(ctx context.Context, b *txBuilder, full bool, stream *elementStream) (ops int, err error) {
	if p.elems == nil || (full && p.recreate) {
		tx := p.nft.NewTransaction()
		if full {
			// The table is recreated in the same transaction: packets see
			// the old rules until the commit, then the new ones.
			tx.Add(&knftables.Table{})
			tx.Delete(&knftables.Table{})
			baseObjects(tx, &p.table, false, nil)
		}
		b.flush(tx, full)
		ops = tx.NumOperations()
		if ops == 0 {
			return 0, nil
		}
		if err := p.nft.Run(ctx, tx); err != nil {
			return ops, fmt.Errorf("nftables transaction of %d operations (full=%v): %w", ops, full, err)
		}
		if full {
			p.recreate = false
			p.groupChains = map[string]bool{}
		}
		p.noteGroups(b)
		return ops, nil
	}
	if full {
		// Should any step fail, the next full sync does it all in one
		// nft transaction (table recreated): slower, but the tried way.
		defer func() {
			if err != nil {
				p.recreate = true
			}
		}()
	}

	if !full {
		// Group chains are created once and deleted by full syncs only.
		b.newGroups = slices.DeleteFunc(b.newGroups, func(g group) bool { return p.groupChains[g.name()] })
		b.delGroups = nil
	}
	pre := p.nft.NewTransaction()
	var keep map[string]bool
	if full {
		keep = map[string]bool{}
		baseObjects(pre, &p.table, true, keep)
		for _, g := range b.newGroups {
			keep[g.name()] = true
		}
		for name := range b.writeChains {
			keep[name] = true
		}
		for _, s := range b.addSets {
			keep[s.Name] = true
		}
	}
	b.flushCreations(pre, full)
	del, add := b.orderedElems(full)
	batch := &ElementBatch{}
	for _, e := range del {
		if p.elems.Handles(elemSet(e)) {
			batch.Delete = append(batch.Delete, e)
		} else {
			pre.Delete(&knftables.Element{Set: e.Set, Map: e.Map, Key: e.Key})
		}
	}
	for _, e := range add {
		if p.elems.Handles(elemSet(e)) {
			batch.Add = append(batch.Add, e)
		} else {
			pre.Add(e)
		}
	}
	// The builder's lists are no longer needed: let the GC have them
	// while the batch is encoded.
	b.delElems, b.addElems = nil, nil
	if stream != nil && stream.err != nil {
		return ops, fmt.Errorf("element stream: %w", stream.err)
	}

	if n := pre.NumOperations(); n > 0 {
		ops += n
		if err := p.nft.Run(ctx, pre); err != nil {
			return ops, fmt.Errorf("nftables transaction of %d creations (full=%v): %w", n, full, err)
		}
	}
	if full {
		// The old group chains are unreferenced once the batch is in, and
		// deleted as leftovers.
		p.groupChains = map[string]bool{}
	}
	p.noteGroups(b)
	if stream != nil {
		// A full sync: every element the writer handles was streamed (the
		// flushes first); what the builder kept is none of its.
		if len(batch.Delete)+len(batch.Add) > 0 {
			return ops, fmt.Errorf("element batch: %d elements not streamed", len(batch.Delete)+len(batch.Add))
		}
		ops += stream.ops
		if err := stream.s.Send(ctx); err != nil {
			return ops, fmt.Errorf("element batch (full=%v): %w", full, err)
		}
	} else if n := len(batch.Flush) + len(batch.Delete) + len(batch.Add); n > 0 {
		ops += n
		if err := p.elems.WriteElements(ctx, batch); err != nil {
			return ops, fmt.Errorf("element batch (full=%v): %w", full, err)
		}
	}
	post := p.nft.NewTransaction()
	b.flushDeletions(post)
	if full {
		if err := p.deleteLeftovers(ctx, post, keep); err != nil {
			return ops, err
		}
	}
	if n := post.NumOperations(); n > 0 {
		ops += n
		if err := p.nft.Run(ctx, post); err != nil {
			return ops, fmt.Errorf("nftables transaction of %d deletions (full=%v): %w", n, full, err)
		}
	}
	return ops, nil
}

// elementStream is a full sync's stream of elements and what it counted.
type elementStream struct {
	s   ElementStream
	ops int
	err error // the first Add error: the sync fails with it
}

// streamElements opens the ElementWriter's stream for a full sync (every
// set and map it handles flushed first) and points b's sink at it, so
// that each element is encoded as it is made rather than all kept.
func (p *Proxier) streamElements(b *txBuilder) (*elementStream, error) {
	var flush []string
	for _, name := range sortedKeys(elementLayouts()) {
		if p.elems.Handles(name) {
			flush = append(flush, name)
		}
	}
	s, err := p.elems.Stream(flush)
	if err != nil {
		return nil, fmt.Errorf("element stream: %w", err)
	}
	st := &elementStream{s: s, ops: len(flush)}
	b.sink = func(e *knftables.Element) bool {
		if !p.elems.Handles(elemSet(e)) {
			return false
		}
		if st.err == nil {
			st.err = s.Add(e)
		}
		st.ops++
		return true
	}
	return st, nil
}

// noteGroups records the group chains that b created as present (and
// those it deleted as gone).
func (p *Proxier) noteGroups(b *txBuilder) {
	if p.groupChains == nil {
		p.groupChains = map[string]bool{}
	}
	for _, g := range b.newGroups {
		p.groupChains[g.name()] = true
	}
	for _, name := range b.delGroups {
		delete(p.groupChains, name)
	}
}

// deleteLeftovers adds to tx the deletion of every chain, set and map of
// the table that keep does not name: what the services no longer need,
// or what a failed sync created. Elements no longer refer to them (the
// full sync's batch replaced them all). It blocks for the listing (over
// netlink: nft's listing prints every element, seconds at 10,000 services).
func (p *Proxier) deleteLeftovers(ctx context.Context, tx *knftables.Transaction, keep map[string]bool) error {
	objs, err := p.elems.Objects(ctx)
	if err != nil {
		return fmt.Errorf("list the table's objects: %w", err)
	}
	// Flushed first: a leftover chain may jump to another.
	var chains []string
	for _, c := range objs["chain"] {
		if !keep[c] {
			chains = append(chains, c)
			tx.Flush(&knftables.Chain{Name: c})
		}
	}
	for _, c := range chains {
		tx.Delete(&knftables.Chain{Name: c})
	}
	for _, s := range objs["set"] {
		if !keep[s] {
			tx.Delete(&knftables.Set{Name: s})
		}
	}
	for _, m := range objs["map"] {
		if !keep[m] {
			tx.Delete(&knftables.Map{Name: m})
		}
	}
	return nil
}

// transactionStream collects a stream into one batch.
type transactionStream struct {
	w TransactionElements
	b ElementBatch
}

// Add implements ElementStream: it keeps e for Send.
func (s *transactionStream) Add(e *knftables.Element) error {
	s.b.Add = append(s.b.Add, e)
	return nil
}

// Send implements ElementStream: one WriteElements of everything added.
func (s *transactionStream) Send(ctx context.Context) error { return s.w.WriteElements(ctx, &s.b) }

// Stream implements ElementWriter: the batch is one transaction at Send.
func (w TransactionElements) Stream(flush []string) (ElementStream, error) {
	return &transactionStream{w: w, b: ElementBatch{Flush: flush}}, nil
}

// TransactionElements is the ElementWriter that writes each batch as one
// knftables transaction of its own: with knftables.NewFake it lets tests
// see the steps of apply; on a node NetlinkElements does the same without
// the nft process. It handles the same sets as NetlinkElements.
type TransactionElements struct {
	NFT knftables.Interface
}

// Handles implements ElementWriter.
func (w TransactionElements) Handles(set string) bool {
	_, ok := elementLayouts()[set]
	return ok
}

// WriteElements implements ElementWriter; it blocks for the transaction.
func (w TransactionElements) WriteElements(ctx context.Context, b *ElementBatch) error {
	layouts := elementLayouts()
	tx := w.NFT.NewTransaction()
	for _, name := range b.Flush {
		if l := layouts[name]; l.verdict || l.value != nil {
			tx.Flush(&knftables.Map{Name: name})
		} else {
			tx.Flush(&knftables.Set{Name: name})
		}
	}
	for _, e := range b.Delete {
		tx.Delete(&knftables.Element{Set: e.Set, Map: e.Map, Key: e.Key})
	}
	for _, e := range b.Add {
		tx.Add(e)
	}
	if err := w.NFT.Run(ctx, tx); err != nil {
		return fmt.Errorf("element transaction: %w", err)
	}
	return nil
}

// Objects implements ElementWriter.
func (w TransactionElements) Objects(ctx context.Context) (map[string][]string, error) {
	return w.NFT.ListAll(ctx)
}
