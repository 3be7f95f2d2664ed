package server

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func hostsHandler(t *testing.T, opt HostsOptions) *Handler {
	t.Helper()
	hs, err := NewHosts(opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	return exampleHandler(t, func(o *Options) { o.Hosts = hs })
}

func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func TestHostsAnswers(t *testing.T) {
	h := hostsHandler(t, HostsOptions{
		Entries:     []string{"10.1.2.3 db.corp.example db2.corp.example # primary", "fd00::7 db.corp.example", "10.96.0.100 web.corp.example"},
		TTL:         60,
		Fallthrough: true,
	})
	r := ask(t, h, question("DB.Corp.Example.", dns.TypeA), false)
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].String() != "DB.Corp.Example.\t60\tIN\tA\t10.1.2.3" {
		t.Fatalf("A: %v", r)
	}
	r = ask(t, h, question("db.corp.example.", dns.TypeAAAA), false)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.AAAA).AAAA.String() != "fd00::7" {
		t.Fatalf("AAAA: %v", r)
	}
	// The name exists: another type is NODATA, not passed on.
	r = ask(t, h, question("db2.corp.example.", dns.TypeAAAA), false)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Fatalf("NODATA: %v", r)
	}
	r = ask(t, h, question("3.2.1.10.in-addr.arpa.", dns.TypePTR), false)
	if got := got(r.Answer); len(got) != 2 || got[0] != "3.2.1.10.in-addr.arpa.\t60\tIN\tPTR\tdb.corp.example." || got[1] != "3.2.1.10.in-addr.arpa.\t60\tIN\tPTR\tdb2.corp.example." {
		t.Fatalf("PTR: %v", r)
	}
	// An entry for a cluster address comes before the cluster's own PTR.
	r = ask(t, h, question("100.0.96.10.in-addr.arpa.", dns.TypePTR), false)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.PTR).Ptr != "web.corp.example." {
		t.Fatalf("PTR of a cluster address: %v", r)
	}
	// Fallthrough: cluster names are still answered by the cluster.
	r = ask(t, h, question("web-server-service.default.svc.cluster.local.", dns.TypeA), false)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.96.0.100" {
		t.Fatalf("cluster name through hosts: %v", r)
	}
	r = ask(t, h, question("nothere.corp.example.", dns.TypeA), false)
	if r.Rcode != dns.RcodeRefused {
		t.Fatalf("an unknown outside name without upstreams: want REFUSED (passed on), got %v", r)
	}
}

func TestHostsWithoutFallthrough(t *testing.T) {
	h := hostsHandler(t, HostsOptions{Entries: []string{"10.1.2.3 db.corp.example"}, Zones: []string{"corp.example"}, NoReverse: true})
	r := ask(t, h, question("other.corp.example.", dns.TypeA), false)
	if r.Rcode != dns.RcodeNameError || !r.Authoritative {
		t.Fatalf("unknown name inside the hosts zone: want NXDOMAIN, got %v", r)
	}
	// Outside the zones the entries are not consulted at all.
	r = ask(t, h, question("web-server-service.default.svc.cluster.local.", dns.TypeA), false)
	if len(r.Answer) != 1 {
		t.Fatalf("cluster name outside the hosts zone: %v", r)
	}
	// no_reverse: the PTR of the entry's address is not answered by hosts.
	r = ask(t, h, question("3.2.1.10.in-addr.arpa.", dns.TypePTR), false)
	if len(r.Answer) != 0 {
		t.Fatalf("PTR with NoReverse: %v", r)
	}
}

func TestHostsBadEntry(t *testing.T) {
	for _, e := range []string{"10.1.2.3", "notanip foo", "10.1.2.3 bad..name"} {
		if _, err := NewHosts(HostsOptions{Entries: []string{e}}, nil); err == nil {
			t.Errorf("entry %q accepted", e)
		}
	}
}

// TestHostsFileReload writes a hosts file, changes it, and waits for the
// new entry to be served (Watch polls its size and time).
func TestHostsFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte("# comment\n127.0.0.1 localhost\n10.0.0.1 one.example\nbroken-line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hs, err := NewHosts(HostsOptions{File: path, Reload: 10 * time.Millisecond, TTL: 5, Fallthrough: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := exampleHandler(t, func(o *Options) { o.Hosts = hs })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hs.Watch(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if r := ask(t, h, question("one.example.", dns.TypeA), false); len(r.Answer) != 1 {
		t.Fatalf("file entry: %v", r)
	}
	if err := os.WriteFile(path, []byte("10.0.0.2 two.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := ask(t, h, question("two.example.", dns.TypeA), false)
		if len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == "10.0.0.2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("changed hosts file not served: %v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := ask(t, h, question("one.example.", dns.TypeA), false); r.Rcode != dns.RcodeRefused {
		t.Fatalf("removed entry still answered: %v", r)
	}
}

// TestHostsKeepsZeroAlloc: with hosts configured, a cluster answer that
// the entries do not cover allocates nothing.
func TestHostsKeepsZeroAlloc(t *testing.T) {
	h := hostsHandler(t, HostsOptions{Entries: []string{"10.1.2.3 db.corp.example"}, Fallthrough: true})
	req, _ := question("web-server-service.default.svc.cluster.local.", dns.TypeA).Pack()
	out := make([]byte, 0, 4096)
	client := netip.MustParseAddrPort("127.0.0.1:5000")
	if n := testing.AllocsPerRun(100, func() { h.Respond(req, out, client, false, nil) }); n != 0 {
		t.Fatalf("%v allocations per query with hosts configured", n)
	}
}
