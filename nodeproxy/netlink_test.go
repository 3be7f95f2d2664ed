package nodeproxy

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/clusterdns/clusterdns/registry"
)

// TestNetlinkElementsEncodeAsNft writes the same rules twice, each time
// into a fresh network namespace of a real kernel: once with every element
// as nft text (no ElementWriter) and once with NetlinkElements, then
// compares what `nft list table` prints (elements sorted within each set:
// the kernel's hash order is its own). Both go through the golden test
// cluster's full sync, its partial syncs (endpoint change, affinity
// endpoint gone, service deleted), a second full sync over the first and
// the first sync of a new Proxier (a restart) after the affinity service
// was deleted, then one hand-made element (with a comment and, for the verdict maps,
// a goto and a drop) into every set and map the netlink writer handles:
// IPv4 and IPv6, TCP, UDP and SCTP, verdict maps, endpoint, local and
// NodePort maps, reject, firewall and hairpin sets.
func TestNetlinkElementsEncodeAsNft(t *testing.T) {
	requireNetAdmin(t)
	viaText := writeAndList(t, false)
	viaNetlink := writeAndList(t, true)
	if viaText == "" || viaNetlink == "" {
		t.Fatal("nothing listed")
	}
	if strings.Contains(viaNetlink, "affinity-") {
		t.Errorf("the affinity chains and sets of the deleted service are left:\n%s", viaNetlink)
	}
	if viaText != viaNetlink {
		t.Errorf("the table differs when its elements go over netlink\n--- nft text:\n%s\n--- netlink:\n%s",
			viaText, viaNetlink)
	}
	for _, want := range []string{
		"10.96.1.100 . 80 . 1 : 10.244.14.10 . 8080", // the endpoint added (slots afresh after the restart)
		`10.96.1.100 . tcp . 80 comment "default/web/tcp/80" : goto cluster-v4-tcp-n2`,
		"fd00:10:96::7 . 9 . 3 : fd00:10:244::7 . 9",     // hand-made, v6 endpoint map
		`sctp . 30009 comment "probe" : goto probe`,      // hand-made, NodePort verdict map
		`30009 . 3 : 10.244.7.7 . 9`,                     // hand-made, v4 NodePort map
		`10.244.7.7 . 10.244.7.7 comment "probe"`,        // hand-made, hairpin
		`fd00:10:96::7 . tcp . 9 comment "probe" : drop`, // hand-made, v6 verdict map
		`10.96.7.7 . sctp . 9 comment "probe"`,           // hand-made, reject and firewall sets
	} {
		if !strings.Contains(viaNetlink, want) {
			t.Errorf("netlink-written table lacks %q:\n%s", want, viaNetlink)
		}
	}
}

// writeAndList does TestNetlinkElementsEncodeAsNft's writes in a fresh
// network namespace and returns the table's normalized listing.
func writeAndList(t *testing.T, useNetlink bool) string {
	ctx := context.Background()
	store := newTestStore(t, testFiles...)
	var listing string
	inFreshNetns(t, func() {
		nft, err := knftables.New(knftables.InetFamily, DefaultTable)
		if err != nil {
			t.Errorf("knftables: %v", err)
			return
		}
		cfg := ProxierConfig{NFT: nft, NodeName: "node-a", Zone: "zone-a",
			ClusterCIDRs:      []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/48")},
			NodePortAddresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/64")}}
		var nl *NetlinkElements
		if useNetlink {
			if nl, err = NewNetlinkElements(DefaultTable); err != nil {
				t.Errorf("netlink writer: %v", err)
				return
			}
			defer nl.Close()
			cfg.Elements = nl
		}
		p := NewProxier(cfg)
		sync := func(what string, snap *registry.Snapshot, changed []registry.Key, full bool) {
			if _, err := p.Sync(ctx, snap, changed, full); err != nil {
				t.Errorf("%s (netlink=%v): %v", what, useNetlink, err)
			}
		}
		sync("full sync", store.Snapshot(), nil, true)
		snap := editSlice(t, store, "default", "web-abc", func(sl *registry.EndpointSlice) {
			sl.Endpoints = append(sl.Endpoints[1:], registry.Endpoint{Address: netip.MustParseAddr("10.244.14.10"), Ready: true})
		})
		sync("partial sync", snap, snap.Changed, false)
		snap = editSlice(t, store, "apps", "sticky-abc", func(sl *registry.EndpointSlice) { sl.Endpoints = sl.Endpoints[1:] })
		sync("partial sync (affinity)", snap, snap.Changed, false)
		store.DeleteService(registry.Key{Namespace: "apps", Name: "multi"})
		snap = store.Flush()
		sync("partial sync (delete)", snap, snap.Changed, false)
		sync("second full sync", snap, nil, true)
		// A restart: a new Proxier's first sync over the table in place
		// (with netlink: refreshed, and the affinity chains and sets of the
		// deleted service and its unused group chains deleted as leftovers).
		store.DeleteService(registry.Key{Namespace: "apps", Name: "sticky"})
		snap = store.Flush()
		p = NewProxier(cfg)
		sync("first sync after a restart", snap, nil, true)

		tx := nft.NewTransaction()
		tx.Add(&knftables.Chain{Name: "probe"})
		if err := nft.Run(ctx, tx); err != nil {
			t.Errorf("probe chain: %v", err)
			return
		}
		probes := probeElements()
		if useNetlink {
			err = nl.WriteElements(ctx, &ElementBatch{Add: probes})
		} else {
			tx := nft.NewTransaction()
			for _, e := range probes {
				tx.Add(e)
			}
			err = nft.Run(ctx, tx)
		}
		if err != nil {
			t.Errorf("probe elements (netlink=%v): %v", useNetlink, err)
			return
		}
		out, err := exec.Command("nft", "list", "table", "inet", DefaultTable).CombinedOutput()
		if err != nil {
			t.Errorf("nft list: %v: %s", err, out)
			return
		}
		listing = sortElements(string(out))
	})
	return listing
}

// probeElements makes one element for every set and map that the netlink
// writer handles, from its layout, two for the verdict maps (goto, drop).
func probeElements() []*knftables.Element {
	var out []*knftables.Element
	layouts := elementLayouts()
	for _, name := range sortedKeys(layouts) {
		l := layouts[name]
		addr, proto := "10.244.7.7", "sctp"
		if strings.Contains(name, "-v6") {
			addr = "fd00:10:244::7"
		}
		for _, pr := range protocols {
			if strings.HasSuffix(name, "-"+pr) {
				proto = pr
			}
		}
		words := func(fields []field, vip bool) []string {
			var w []string
			for _, f := range fields {
				switch f {
				case fieldAddr:
					if vip {
						w = append(w, strings.Replace(strings.Replace(addr, "10.244.7.7", "10.96.7.7", 1), ":244::", ":96::", 1))
					} else {
						w = append(w, addr)
					}
				case fieldProto:
					w = append(w, proto)
				case fieldPort:
					if vip && !slices.Contains(fields, fieldAddr) {
						w = append(w, "30009")
					} else {
						w = append(w, "9")
					}
				case fieldSlot:
					w = append(w, "3")
				}
			}
			return w
		}
		comment := knftables.PtrTo("probe")
		key := words(l.key, true)
		if name == hairpinSet(ipv4) || name == hairpinSet(ipv6) {
			key = []string{addr, addr}
		}
		switch {
		case l.verdict:
			out = append(out,
				&knftables.Element{Map: name, Key: key, Value: []string{"goto probe"}, Comment: comment},
				&knftables.Element{Map: name, Key: words(l.key, true), Value: []string{"drop"}, Comment: comment})
			// A second key for the drop: same words but another protocol.
			last := out[len(out)-1]
			last.Key = slices.Clone(last.Key)
			for i, f := range l.key {
				if f == fieldProto {
					last.Key[i] = "tcp"
				}
			}
		case l.value != nil:
			out = append(out, &knftables.Element{Map: name, Key: key, Value: words(l.value, false)})
		default:
			out = append(out, &knftables.Element{Set: name, Key: key, Comment: comment})
		}
	}
	return out
}

// sortElements sorts the elements inside each `elements = { … }` of an nft
// listing, so that two tables with the same elements list the same.
func sortElements(listing string) string {
	var b strings.Builder
	rest := listing
	for {
		i := strings.Index(rest, "elements = {")
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		j := strings.Index(rest[i:], "}")
		if j < 0 {
			b.WriteString(rest)
			return b.String()
		}
		body := rest[i+len("elements = {") : i+j]
		var elems []string
		for _, e := range strings.Split(body, ",") {
			elems = append(elems, strings.Join(strings.Fields(e), " "))
		}
		slices.Sort(elems)
		fmt.Fprintf(&b, "%selements = {\n\t%s }", rest[:i], strings.Join(elems, ",\n\t"))
		rest = rest[i+j+1:]
	}
}
