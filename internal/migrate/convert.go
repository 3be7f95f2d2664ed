package migrate

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/server"
)

// ImportCorefile reads the Corefile at path (and what it imports) and
// converts it. Only a Corefile that does not parse is an error; what the
// conversion cannot express is in the result's findings.
func ImportCorefile(path string) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("corefile: %w", err)
	}
	defer f.Close()
	return ReadCorefile(path, f)
}

// ReadCorefile is ImportCorefile for a Corefile read from r; filename
// names it in positions and is where relative imports are found from
// (a name without a folder, such as "<stdin>": the working directory).
func ReadCorefile(filename string, r io.Reader) (*Result, error) {
	blocks, err := ParseCorefile(filename, r)
	if err != nil {
		return nil, err
	}
	return ConvertCorefile(filename, blocks), nil
}

// ConvertCorefile converts parsed server blocks. clusterdns serves one
// address: the blocks on the port of the root zone (".") are merged — the
// root block's forward gives the upstreams, the other blocks' forwards give
// stub domains, kubernetes gives the cluster domains — and blocks on other
// ports are reported.
func ConvertCorefile(source string, blocks []ServerBlock) *Result {
	c := &conv{r: &Result{Source: "Corefile " + source}}
	c.run(blocks)
	c.r.sortFindings()
	return c.r
}

// What a Corefile without the kubernetes plugin serves as its cluster:
// nothing (deploy/overlays/node-local does the same).
const (
	noClusterDomain = "node-cache.invalid"
	noClusterDir    = "/var/lib/clusterdns/empty"
)

type conv struct {
	r *Result
	// per import
	sawCache, sawPrefetch, sawStale, sawLoadbalance bool
	sawPrometheus, sawHealth, sawReady, sawKube     bool
	readyAddr                                       string
	readyDir                                        Directive
	successCap, denialCap                           int
	capDir                                          *Directive
}

// run converts the blocks on the served port and then what the Corefile
// leaves out.
func (c *conv) run(blocks []ServerBlock) {
	if len(blocks) == 0 {
		c.r.Findings = append(c.r.Findings, Finding{Where: "-", Directive: "(empty)", Level: Unsupported, Why: "no server block"})
		return
	}
	// The port served: the root zone's, else the first block's.
	port := blocks[0].Keys[0].Port
	found := false
	for _, b := range blocks {
		for _, k := range b.Keys {
			if k.Zone == "." && k.Scheme == "dns" && !found {
				port, found = k.Port, true
			}
		}
	}
	var served []ServerBlock
	hasRoot := false
	for _, b := range blocks {
		at := Directive{Name: "server block " + keysText(b), File: b.File, Line: b.Line}
		if b.Line == 0 {
			at.Line = 1
		}
		var ok []Key
		for _, k := range b.Keys {
			switch {
			case k.Scheme == "tls":
				c.r.add(at, Unsupported, fmt.Sprintf("%s: DNS over TLS is one listener for every zone: set tls_listen, tls_cert_file and tls_key_file (the block's tls directive names the files)", k.Raw))
			case k.Scheme != "dns":
				c.r.add(at, Unsupported, fmt.Sprintf("%s: clusterdns serves DNS over UDP, TCP and TLS only (no %s://)", k.Raw, k.Scheme))
			case k.Port != port:
				c.r.add(at, Unsupported, fmt.Sprintf("%s: clusterdns listens on one port (%s); this block's port %s is not served", k.Raw, port, k.Port))
			default:
				ok = append(ok, k)
				hasRoot = hasRoot || k.Zone == "."
			}
		}
		if len(ok) > 0 {
			b.Keys = ok
			served = append(served, b)
		}
	}
	if len(served) == 0 {
		return
	}
	first := Directive{Name: "server block " + keysText(served[0]), File: served[0].File, Line: max(served[0].Line, 1)}
	c.r.set("listen", ":"+port, first)
	for _, b := range served {
		if slices.ContainsFunc(b.Directives, func(d Directive) bool { return d.Name == "kubernetes" }) {
			c.sawKube = true
		}
	}
	if c.sawKube {
		c.r.set("source", "kubernetes", first)
	} else {
		// The node-local pattern (deploy/overlays/node-local): clusterdns
		// needs one served domain; an empty one that shadows no real name.
		c.r.setDefault("source", "files", "no kubernetes: no cluster served here")
		c.r.setDefault("zones_dir", noClusterDir, "no kubernetes: an empty folder")
		c.r.setDefault("domains", []string{noClusterDomain}, "no kubernetes: a domain that shadows no real name (RFC 6761)")
		c.r.add(first, Note, fmt.Sprintf("no kubernetes directive: clusterdns serves no cluster here, only the empty domain %s from the empty folder %s (create it, e.g. an emptyDir), as deploy/overlays/node-local does", noClusterDomain, noClusterDir))
	}
	for _, b := range served {
		c.block(b)
	}
	if !hasRoot {
		c.r.set("upstreams", []string{}, first)
	}
	if _, ok := c.r.Get("upstreams"); !ok {
		c.r.set("upstreams", []string{}, first)
		c.r.add(first, Note, "no `forward .` in the root block: names outside the served zones are refused")
	}
	c.finish(first)
}

// finish sets what a Corefile says by leaving a directive out.
func (c *conv) finish(first Directive) {
	if !c.sawCache {
		c.r.add(first, Note, "no cache: clusterdns always caches forwarded answers (cache_size entries, within their TTLs); prefetch and serve_stale are turned off as CoreDNS has them without cache")
	}
	if !c.sawPrefetch {
		c.r.setDefault("prefetch", 0, "no cache prefetch")
	}
	if !c.sawStale {
		c.r.setDefault("serve_stale", "0s", "no cache serve_stale")
	}
	if c.capDir != nil {
		c.r.set("cache_size", c.successCap+c.denialCap, *c.capDir)
	}
	if !c.sawLoadbalance {
		c.r.setDefault("answer_order", "off", "no loadbalance")
	}
	if !c.sawPrometheus {
		c.r.setDefault("metrics_listen", "", "no prometheus")
	}
	domains := []string{"cluster.local"} // clusterdns's default
	if v, ok := c.r.Get("domains"); ok {
		domains = v.([]string)
	}
	if v, ok := c.r.Get("stub_domains"); ok {
		for stub := range v.(map[string][]string) {
			for _, d := range domains {
				if dns.IsSubDomain(dns.Fqdn(d), dns.Fqdn(stub)) {
					c.r.add(first, Unsupported, fmt.Sprintf("stub domain %s is inside the cluster domain %s, which clusterdns answers itself: its forward is never used", stub, d))
				}
			}
		}
	}
	if c.sawReady {
		if !c.sawHealth {
			c.r.set("health_listen", c.readyAddr, c.readyDir)
			c.r.add(c.readyDir, Note, "/ready (and /healthz) are served on "+c.readyAddr)
		} else if v, _ := c.r.Get("health_listen"); v != c.readyAddr {
			c.r.add(c.readyDir, Note, fmt.Sprintf("clusterdns serves /ready next to /healthz on health_listen %v, not on %s: point the readiness probe there", v, c.readyAddr))
		}
	} else if !c.sawHealth {
		c.r.setDefault("health_listen", "", "no health or ready")
	}
}

func keysText(b ServerBlock) string {
	var s []string
	for _, k := range b.Keys {
		s = append(s, k.Raw)
	}
	return strings.Join(s, " ")
}

// zonesOf returns the block's zones.
func zonesOf(b ServerBlock) []string {
	var z []string
	for _, k := range b.Keys {
		z = append(z, k.Zone)
	}
	return z
}

// block converts one server block's directives.
func (c *conv) block(b ServerBlock) {
	zones := zonesOf(b)
	for _, d := range b.Directives {
		switch d.Name {
		case "errors":
			if len(d.Block) > 0 {
				c.r.add(d, Note, "errors are always logged (log/slog); consolidate is not needed")
			}
		case "health":
			c.health(d)
		case "ready":
			c.sawReady = true
			c.readyAddr, c.readyDir = ":8181", d
			if len(d.Args) > 0 {
				c.readyAddr = d.Args[0]
			}
		case "kubernetes":
			c.kubernetes(d, zones)
		case "prometheus":
			c.sawPrometheus = true
			addr := ":9153"
			if len(d.Args) > 0 {
				addr = d.Args[0]
			}
			if _, _, err := net.SplitHostPort(addr); err != nil {
				c.r.add(d, Unsupported, fmt.Sprintf("address %q: want host:port", addr))
				continue
			}
			c.r.set("metrics_listen", addr, d)
		case "forward", "proxy":
			c.forward(d, zones)
		case "cache":
			c.cache(d, zones)
		case "loop":
			c.r.add(d, Note, "clusterdns drops its own address (listening on every address: loopback ones on its port) from resolv.conf upstreams; a loop through another resolver is not detected")
		case "reload":
			c.r.add(d, Note, "the --config file is watched and reloaded on change (and on SIGHUP); no interval to set")
		case "loadbalance":
			c.sawLoadbalance = true
			if len(d.Args) > 0 && d.Args[0] != "round_robin" {
				c.r.add(d, Unsupported, fmt.Sprintf("policy %s: clusterdns orders answers round_robin, random or off", d.Args[0]))
				continue
			}
			c.r.set("answer_order", "round_robin", d)
		case "log":
			c.r.set("query_log", true, d)
			if len(d.Args) > 1 || len(d.Block) > 0 {
				c.r.add(d, Note, "every query is logged with client, name, type and transport; log formats and classes are not expressed")
			}
		case "autopath":
			if len(d.Args) != 1 || d.Args[0] != "@kubernetes" {
				c.r.add(d, Unsupported, "clusterdns completes search paths from the cluster only (autopath @kubernetes)")
				continue
			}
			c.r.set("autopath", true, d)
		case "bind":
			c.bind(d)
		case "hosts":
			c.hosts(d, zones)
		case "rewrite":
			c.rewrite(d)
		case "any":
			c.r.add(d, Note, "clusterdns answers ANY with one RRset (RFC 8482) rather than HINFO")
		case "bufsize":
			if len(d.Args) == 1 && d.Args[0] == "1232" {
				continue
			}
			c.r.add(d, Unsupported, "clusterdns advertises an EDNS buffer of 1232 bytes; it cannot be set")
		case "debug":
			c.r.add(d, Unsupported, "clusterdns always recovers from a panic in one query; for more logs set log_level: debug")
		case "file", "auto", "secondary":
			c.r.add(d, Unsupported, "zone files are served from zones_dir (RFC 1035 master files named *.zone); copy the zone there and set zones_dir")
		default:
			c.r.add(d, Unsupported, "no clusterdns equivalent")
		}
	}
}

// health converts `health [ADDR] { lameduck D }`.
func (c *conv) health(d Directive) {
	c.sawHealth = true
	addr := ":8080"
	if len(d.Args) > 0 {
		addr = d.Args[0]
	}
	c.r.set("health_listen", addr, d)
	c.r.add(d, Note, "clusterdns serves the liveness check at /healthz (CoreDNS: /health): point the liveness probe there")
	for _, s := range d.Block {
		if s.Name == "lameduck" && len(s.Args) == 1 {
			if _, err := time.ParseDuration(s.Args[0]); err != nil {
				c.r.add(s, Unsupported, fmt.Sprintf("duration %q: %v", s.Args[0], err))
				continue
			}
			c.r.set("lame_duck", s.Args[0], s)
			continue
		}
		c.r.add(s, Unsupported, "unknown health option")
	}
}

// isReverse reports whether a zone is a reverse zone (PTR names).
func isReverse(z string) bool {
	return dns.IsSubDomain("in-addr.arpa.", z) || dns.IsSubDomain("ip6.arpa.", z)
}

// kubernetes converts `kubernetes [ZONES] { options }`: the cluster
// domains, the record options, and the reverse zones it answers with
// authority (reverse_zones): those that no `fallthrough` passes on.
func (c *conv) kubernetes(d Directive, blockZones []string) {
	var reverse []reverseEntry
	zones := blockZones
	if len(d.Args) > 0 {
		zones = nil
		for _, a := range d.Args {
			if strings.Contains(a, "/") && !strings.Contains(a, "://") {
				// A CIDR: clusterdns takes it as it is, on a boundary or not.
				rz, err := server.ReverseZones([]string{a})
				if err != nil {
					c.r.add(d, Unsupported, err.Error())
					continue
				}
				reverse = append(reverse, reverseEntry{entry: a, zones: rz})
				continue
			}
			k, err := parseKey(a)
			if err != nil {
				c.r.add(d, Unsupported, err.Error())
				continue
			}
			zones = append(zones, k.Zone)
		}
	}
	var domains []string
	for _, z := range zones {
		switch {
		case z == ".":
			c.r.add(d, Unsupported, "the root zone cannot be a cluster domain")
		case isReverse(z):
			reverse = append(reverse, reverseEntry{entry: strings.TrimSuffix(z, "."), zones: []string{z}})
		default:
			domains = append(domains, strings.TrimSuffix(z, "."))
		}
	}
	if len(domains) > 0 {
		c.r.appendList("domains", domains, d)
	}
	var fell []string // reverse zones passed on to the next plugin
	for _, s := range d.Block {
		switch s.Name {
		case "pods":
			if len(s.Args) != 1 || !slices.Contains([]string{"disabled", "insecure", "verified"}, s.Args[0]) {
				c.r.add(s, Unsupported, "want pods disabled, insecure or verified")
				continue
			}
			c.r.set("pods", s.Args[0], s)
		case "ttl":
			n, err := strconv.Atoi(strings.Join(s.Args, " "))
			if err != nil || n < 0 || n > 3600 {
				c.r.add(s, Unsupported, "want a TTL from 0 to 3600 seconds")
				continue
			}
			c.r.set("ttl", n, s)
			c.r.set("negative_ttl", n, s) // CoreDNS's SOA minimum is the same TTL
		case "endpoint_pod_names":
			c.r.set("endpoint_pod_names", true, s)
		case "namespaces":
			c.r.appendList("namespaces", s.Args, s)
		case "kubeconfig":
			if len(s.Args) == 0 {
				c.r.add(s, Unsupported, "want a kubeconfig file")
				continue
			}
			c.r.set("kubeconfig", s.Args[0], s)
			if len(s.Args) > 1 {
				c.r.add(s, Unsupported, "the context "+s.Args[1]+" cannot be chosen: clusterdns uses the kubeconfig's current context")
			}
		case "fallthrough":
			fz := s.Args
			if len(fz) == 0 {
				fz = zones
				for _, r := range reverse {
					fell = append(fell, r.zones...)
				}
			}
			for _, z := range fz {
				if strings.Contains(z, "/") {
					rz, err := server.ReverseZones([]string{z})
					if err != nil {
						c.r.add(s, Unsupported, err.Error())
						continue
					}
					fell = append(fell, rz...)
					continue
				}
				k, err := parseKey(z)
				if err != nil {
					c.r.add(s, Unsupported, err.Error())
					continue
				}
				if isReverse(k.Zone) {
					fell = append(fell, k.Zone)
					continue
				}
				c.r.add(s, Unsupported, fmt.Sprintf("fallthrough %s: an unknown name in a cluster domain is NXDOMAIN in clusterdns, never passed on", strings.TrimSuffix(k.Zone, ".")))
			}
		case "endpoint":
			c.r.add(s, Unsupported, "the API server is given by a kubeconfig (kubeconfig key or $KUBECONFIG), not an endpoint URL")
		default:
			c.r.add(s, Unsupported, "no clusterdns equivalent of this kubernetes option")
		}
	}
	// A reverse zone that falls through is clusterdns's default (cluster
	// addresses answered, other PTRs forwarded); one that does not is
	// answered with authority.
	var authoritative []string
	for _, r := range reverse {
		covered := true
		for _, z := range r.zones {
			covered = covered && slices.ContainsFunc(fell, func(f string) bool { return dns.IsSubDomain(f, z) })
		}
		if !covered {
			authoritative = append(authoritative, r.entry)
		}
	}
	if len(authoritative) > 0 {
		c.r.appendList("reverse_zones", authoritative, d)
	}
}

// reverseEntry is a reverse zone of a kubernetes directive: as written
// (a zone name or a CIDR) and the zones it stands for.
type reverseEntry struct {
	entry string
	zones []string
}

// bind sets the host of listen from `bind ADDR` (one IP address).
func (c *conv) bind(d Directive) {
	if len(d.Args) != 1 {
		c.r.add(d, Unsupported, "clusterdns listens on one address")
		if len(d.Args) == 0 {
			return
		}
	}
	a, err := netip.ParseAddr(d.Args[0])
	if err != nil {
		c.r.add(d, Unsupported, fmt.Sprintf("%s: want an IP address (interface names are not supported)", d.Args[0]))
		return
	}
	for i, e := range c.r.entries {
		if e.key == "listen" {
			_, port, _ := net.SplitHostPort(e.value.(string))
			c.r.entries[i].value = net.JoinHostPort(a.String(), port)
			c.r.entries[i].from = d.from()
		}
	}
}

// unset removes a key.
func (r *Result) unset(key string) {
	r.entries = slices.DeleteFunc(r.entries, func(e entry) bool { return e.key == key })
}
