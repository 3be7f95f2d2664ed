package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// HostsOptions configure names answered from hosts(5) lines (CoreDNS's
// hosts plugin): inline entries from the configuration and/or a hosts
// file. They are looked up before the cluster and zone files.
type HostsOptions struct {
	// Entries are hosts lines, "IP NAME [NAME...]".
	Entries []string
	// File is a hosts file read at start and, every Reload, again when its
	// size or time changed; "" for none. A file that is missing is logged
	// and served as empty (it may appear later).
	File   string
	Reload time.Duration // 0: read File once
	// TTL of the answers.
	TTL uint32
	// Zones limit the names looked up (and, without Fallthrough, the names
	// answered NXDOMAIN when absent); empty: every name.
	Zones []string
	// Fallthrough passes names the entries do not have on (to the cluster,
	// zone files and forwarding); without it a name in Zones that no entry
	// has is NXDOMAIN. A name an entry has answers NODATA for other types.
	Fallthrough bool
	// NoReverse turns off the PTR answers for the entries' addresses.
	NoReverse bool
}

// Hosts holds the parsed entries; Watch keeps the file's part current.
// Lookups read an immutable table through an atomic pointer.
type Hosts struct {
	opt    HostsOptions
	zones  []string // lower-case wire names
	inline []hostsLine
	table  atomic.Pointer[hostsTable]
	log    *slog.Logger
	stamp  fileStamp // of the file last read (Watch's goroutine only)
}

type fileStamp struct {
	size int64
	mod  time.Time
	ok   bool
}

type hostsLine struct {
	addr  netip.Addr
	names []string // fully qualified, lower-case
}

// hostsTable maps lower-case wire names to addresses, and reverse names
// to the names that have that address.
type hostsTable struct {
	names map[string]*hostsAddrs
	ptr   map[string][]string
}

type hostsAddrs struct{ v4, v6 []netip.Addr }

// NewHosts parses the inline entries (a bad one is an error) and reads the
// file once.
func NewHosts(opt HostsOptions, log *slog.Logger) (*Hosts, error) {
	if log == nil {
		log = slog.Default()
	}
	hs := &Hosts{opt: opt, log: log}
	for _, z := range opt.Zones {
		w, err := nameToWire(dns.CanonicalName(z))
		if err != nil {
			return nil, fmt.Errorf("hosts zone %q: not a domain name", z)
		}
		hs.zones = append(hs.zones, w)
	}
	for _, e := range opt.Entries {
		l, err := parseHostsLine(e)
		if err != nil {
			return nil, fmt.Errorf("hosts entry %q: %w", e, err)
		}
		if l.addr.IsValid() {
			hs.inline = append(hs.inline, l)
		}
	}
	hs.load()
	return hs, nil
}

// Watch re-reads the file every Reload when it changed, until ctx ends.
// answerer.build runs it on its own goroutine; without a file or a reload
// interval it returns at once.
func (hs *Hosts) Watch(ctx context.Context) {
	if hs.opt.File == "" || hs.opt.Reload <= 0 {
		return
	}
	t := time.NewTicker(hs.opt.Reload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if st := statFile(hs.opt.File); st != hs.stamp {
				hs.load()
			}
		}
	}
}

func statFile(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: fi.Size(), mod: fi.ModTime(), ok: true}
}

// load builds a new table from the inline entries and the file.
func (hs *Hosts) load() {
	lines := append([]hostsLine(nil), hs.inline...)
	if hs.opt.File != "" {
		hs.stamp = statFile(hs.opt.File)
		data, err := os.ReadFile(hs.opt.File)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			hs.log.Warn("hosts file not found, served as empty", "file", hs.opt.File)
		case err != nil:
			hs.log.Error("hosts file not read, served as empty", "file", hs.opt.File, "err", err)
		default:
			sc := bufio.NewScanner(bytes.NewReader(data))
			for n := 1; sc.Scan(); n++ {
				l, err := parseHostsLine(sc.Text())
				if err != nil {
					hs.log.Warn("hosts file line skipped", "file", hs.opt.File, "line", n, "err", err)
					continue
				}
				if l.addr.IsValid() {
					lines = append(lines, l)
				}
			}
		}
	}
	t := &hostsTable{names: map[string]*hostsAddrs{}, ptr: map[string][]string{}}
	for _, l := range lines {
		for _, name := range l.names {
			w, _ := nameToWire(name)
			a := t.names[w]
			if a == nil {
				a = &hostsAddrs{}
				t.names[w] = a
			}
			if l.addr.Is4() {
				a.v4 = appendNew(a.v4, l.addr)
			} else {
				a.v6 = appendNew(a.v6, l.addr)
			}
			rev, _ := dns.ReverseAddr(l.addr.String())
			if w, err := nameToWire(rev); err == nil && !containsString(t.ptr[w], name) {
				t.ptr[w] = append(t.ptr[w], name)
			}
		}
	}
	hs.table.Store(t)
	hs.log.Debug("hosts loaded", "names", len(t.names), "file", hs.opt.File)
}

func appendNew(l []netip.Addr, a netip.Addr) []netip.Addr {
	for _, x := range l {
		if x == a {
			return l
		}
	}
	return append(l, a)
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// parseHostsLine reads "IP NAME [NAME...] [# comment]"; a blank or comment
// line gives an empty hostsLine.
func parseHostsLine(s string) (hostsLine, error) {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return hostsLine{}, nil
	}
	if len(f) < 2 {
		return hostsLine{}, fmt.Errorf("want an address and at least one name")
	}
	addr, err := netip.ParseAddr(f[0])
	if err != nil {
		return hostsLine{}, fmt.Errorf("%q is not an IP address", f[0])
	}
	l := hostsLine{addr: addr.WithZone("").Unmap()}
	for _, n := range f[1:] {
		if _, ok := dns.IsDomainName(n); !ok {
			return hostsLine{}, fmt.Errorf("%q is not a domain name", n)
		}
		l.names = append(l.names, dns.CanonicalName(n))
	}
	return l, nil
}

// inZones reports whether the lower-case wire name falls in the zones.
func (hs *Hosts) inZones(key []byte) bool {
	if len(hs.zones) == 0 {
		return true
	}
	for _, z := range hs.zones {
		if len(key) >= len(z) && string(key[len(key)-len(z):]) == z && (len(key) == len(z) || labelStart(key, len(key)-len(z))) {
			return true
		}
	}
	return false
}

// labelStart reports whether off is where a label of the wire name starts.
func labelStart(w []byte, off int) bool {
	for i := 0; i < len(w) && w[i] != 0; i += int(w[i]) + 1 {
		if i == off {
			return true
		}
	}
	return off == len(w)-1
}

// hostsAnswer answers q from the hosts entries, or returns nil when they
// do not cover the name (the rest of the handler answers it). The lookup
// allocates nothing; an answer is packed with miekg/dns.
func (h *Handler) hostsAnswer(out []byte, q *query, req []byte) []byte {
	hs := h.opt.Hosts
	key := q.lowerName()
	if !hs.inZones(key) {
		return nil
	}
	t := hs.table.Load()
	addrs := t.names[string(key)]
	var names []string
	if addrs == nil && !hs.opt.NoReverse {
		names = t.ptr[string(key)]
	}
	if addrs == nil && names == nil && hs.opt.Fallthrough {
		return nil
	}
	m, name, err := newReply(q, req)
	if err != nil {
		return nil
	}
	hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: hs.opt.TTL}
	want := func(t uint16) bool { return q.qtype == t || q.qtype == dns.TypeANY }
	switch {
	case addrs != nil: // no record of the type: NODATA (the name exists)
		if want(dns.TypeA) {
			for _, ip := range addrs.v4 {
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip.AsSlice()})
			}
		}
		if want(dns.TypeAAAA) {
			for _, ip := range addrs.v6 {
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()})
			}
		}
	case names != nil:
		if want(dns.TypePTR) {
			for _, n := range names {
				hdr.Rrtype = dns.TypePTR
				m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr, Ptr: n})
			}
		}
	default:
		m.Rcode = dns.RcodeNameError
	}
	return h.pack(out, m, q, req)
}
