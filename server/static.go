package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/lb/policy"
)

// IsZoneFile reports whether a file name is an RFC 1035 master file served
// as an extra zone (*.zone).
func IsZoneFile(name string) bool { return strings.EqualFold(path.Ext(name), ".zone") }

// staticIndex is every name of the zones read from master files.
type staticIndex struct {
	zones map[string]*zone // key: origin in wire format
	list  []*zone          // nodes refer to their zone by position here
	names map[string]*node
}

// parsedZone is one master file's last good contents.
type parsedZone struct {
	sum    [32]byte
	origin string
	rrs    []dns.RR
}

// ZoneFiles reads *.zone master files from a folder and keeps each file's
// last good contents: a file that does not parse is refused (the error
// names file:line) and what it served before stays.
type ZoneFiles struct {
	fsys  fs.FS
	where string // prefix for error messages
	files map[string]parsedZone
}

// NewZoneFiles returns a reader of the *.zone files in fsys; where is the
// folder's name for messages.
func NewZoneFiles(fsys fs.FS, where string) *ZoneFiles {
	return &ZoneFiles{fsys: fsys, where: where, files: map[string]parsedZone{}}
}

// load re-reads the folder. changed is false when nothing differs from the
// last call. Errors are joined, one per refused file.
func (zf *ZoneFiles) load(order func(origin string) policy.Policy) (idx *staticIndex, changed bool, err error) {
	entries, err := fs.ReadDir(zf.fsys, ".")
	if err != nil {
		return nil, false, fmt.Errorf("read zone folder %s: %w", zf.where, err)
	}
	var errs []error
	seen := map[string]bool{}
	for _, e := range entries {
		if !IsZoneFile(e.Name()) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if e.IsDir() {
			if _, had := zf.files[e.Name()]; had {
				// A file replaced by a folder is unreadable, not removed.
				seen[e.Name()] = true
				errs = append(errs, fmt.Errorf("%s: is a folder now, last good contents kept", path.Join(zf.where, e.Name())))
			}
			continue
		}
		seen[e.Name()] = true
		data, err := fs.ReadFile(zf.fsys, e.Name())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path.Join(zf.where, e.Name()), err))
			continue
		}
		sum := sha256.Sum256(data)
		if old, ok := zf.files[e.Name()]; ok && old.sum == sum {
			continue
		}
		pz, err := parseZoneFile(path.Join(zf.where, e.Name()), data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pz.sum = sum
		zf.files[e.Name()] = pz
		changed = true
	}
	for name := range zf.files {
		if !seen[name] {
			delete(zf.files, name)
			changed = true
		}
	}
	idx, err = zf.index(order)
	if err != nil {
		errs = append(errs, err)
	}
	return idx, changed, errors.Join(errs...)
}

var zoneErrLine = regexp.MustCompile(` at line: (\d+):\d+$`)

// parseZoneFile parses one master file. Its origin is $ORIGIN, else the file
// name without .zone. It must hold an SOA at the origin.
func parseZoneFile(file string, data []byte) (parsedZone, error) {
	origin := dns.Fqdn(strings.TrimSuffix(path.Base(file), path.Ext(file)))
	zp := dns.NewZoneParser(bytes.NewReader(data), origin, file)
	zp.SetIncludeAllowed(false)
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		// miekg/dns says "file: dns: what: "token" at line: L:C".
		msg := strings.TrimPrefix(err.Error(), file+": ")
		if m := zoneErrLine.FindStringSubmatch(msg); m != nil {
			return parsedZone{}, fmt.Errorf("%s:%s: %s", file, m[1], strings.TrimPrefix(zoneErrLine.ReplaceAllString(msg, ""), "dns: "))
		}
		return parsedZone{}, fmt.Errorf("%s: %w", file, err)
	}
	var soa *dns.SOA
	for _, rr := range rrs {
		if s, ok := rr.(*dns.SOA); ok {
			soa = s
			break
		}
	}
	if soa == nil {
		return parsedZone{}, fmt.Errorf("%s:1: no SOA record", file)
	}
	origin = dns.CanonicalName(soa.Hdr.Name)
	for _, rr := range rrs {
		if !dns.IsSubDomain(origin, dns.CanonicalName(rr.Header().Name)) {
			return parsedZone{}, fmt.Errorf("%s: %s is outside the zone %s", file, rr.Header().Name, origin)
		}
	}
	return parsedZone{origin: origin, rrs: rrs}, nil
}

// index packs every (name, type) of every file.
func (zf *ZoneFiles) index(orderOf func(origin string) policy.Policy) (*staticIndex, error) {
	idx := &staticIndex{zones: map[string]*zone{}, names: map[string]*node{}}
	for _, file := range slices.Sorted(maps.Keys(zf.files)) {
		pz := zf.files[file]
		var soa *dns.SOA
		byName := map[string]map[uint16][]dns.RR{}
		var order []string
		for _, rr := range pz.rrs {
			if s, ok := rr.(*dns.SOA); ok && soa == nil {
				soa = s
			}
			name := dns.CanonicalName(rr.Header().Name)
			rr.Header().Name = name
			if byName[name] == nil {
				byName[name] = map[uint16][]dns.RR{}
				order = append(order, name)
			}
			byName[name][rr.Header().Rrtype] = append(byName[name][rr.Header().Rrtype], rr)
		}
		z, err := newZone(soa)
		if err != nil {
			return nil, err
		}
		if _, dup := idx.zones[z.wire]; dup {
			return nil, fmt.Errorf("%s: zone %s is already served by another file", file, z.origin)
		}
		if len(idx.list) == 256 {
			return nil, fmt.Errorf("%s: more than 256 zone files", file)
		}
		idx.zones[z.wire] = z
		idx.list = append(idx.list, z)
		// Empty non-terminals between the apex and each name.
		for _, name := range order {
			labels := dns.SplitDomainName(name)
			for i := 1; i < len(labels); i++ {
				parent := dns.Fqdn(strings.Join(labels[i:], "."))
				if !dns.IsSubDomain(z.origin, parent) {
					break
				}
				if byName[parent] == nil {
					byName[parent] = map[uint16][]dns.RR{}
					order = append(order, parent)
				}
			}
		}
		for _, name := range order {
			key, err := nameToWire(name)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			n := &node{zone: uint8(len(idx.list) - 1)}
			types := slices.Sorted(maps.Keys(byName[name]))
			for _, t := range types {
				rrs := byName[name][t]
				if t == dns.TypeCNAME {
					n.cname = rrs[0].(*dns.CNAME)
				}
				p, err := prepare(name, t, rrs, zoneAdditional(byName, rrs), dns.RcodeSuccess)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", file, err)
				}
				p.rot = newRotation(p.wire, orderOf(z.origin))
				n.rrsets = append(n.rrsets, rrset{qtype: t, ans: p})
			}
			idx.names[key] = n
		}
	}
	return idx, nil
}

// zoneAdditional returns in-zone addresses of the targets of NS, MX and SRV.
func zoneAdditional(byName map[string]map[uint16][]dns.RR, rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		var target string
		switch r := rr.(type) {
		case *dns.NS:
			target = r.Ns
		case *dns.MX:
			target = r.Mx
		case *dns.SRV:
			target = r.Target
		default:
			continue
		}
		t := byName[dns.CanonicalName(target)]
		out = append(out, t[dns.TypeA]...)
		out = append(out, t[dns.TypeAAAA]...)
	}
	return dedupRR(out)
}

// LoadZones re-reads the zone files and swaps the new static zones in when
// they changed. Refused files keep their last good contents; the error
// names each as file:line. The zone watcher calls it; it may read files.
func (h *Handler) LoadZones(zf *ZoneFiles) error {
	idx, changed, err := zf.load(h.orderFor)
	if idx != nil && (changed || len(h.static.Load().zones) == 0) {
		h.static.Store(idx)
		h.log.Info("zone files loaded", "dir", zf.where, "zones", len(idx.zones))
	}
	return err
}
