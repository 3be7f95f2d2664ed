package migrate

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// forward converts `forward FROM TO... { options }` (and the old proxy)
// into upstreams or stub domains, by the block's zones and FROM.
func (c *conv) forward(d Directive, blockZones []string) {
	if d.Name == "proxy" {
		c.r.add(d, Note, "proxy (removed from CoreDNS) is read as forward")
	}
	if len(d.Args) < 2 {
		c.r.add(d, Unsupported, "want forward FROM TO...")
		return
	}
	from, err := parseKey(d.Args[0])
	if err != nil {
		c.r.add(d, Unsupported, err.Error())
		return
	}
	forceTCP := slices.ContainsFunc(d.Block, func(s Directive) bool { return s.Name == "force_tcp" })
	serverName := ""
	for _, s := range d.Block {
		if s.Name == "tls_servername" && len(s.Args) == 1 {
			serverName = s.Args[0]
		}
	}
	var servers []string
	for _, to := range d.Args[1:] {
		s, err := upstream(to, forceTCP, serverName)
		if err != nil {
			c.r.add(d, Unsupported, err.Error())
			continue
		}
		servers = append(servers, s)
	}
	for _, s := range d.Block {
		switch s.Name {
		case "force_tcp":
		case "max_concurrent":
			n, err := strconv.Atoi(strings.Join(s.Args, " "))
			if err != nil || n < 1 {
				c.r.add(s, Unsupported, "want a positive number")
				continue
			}
			c.r.set("max_forward_in_flight", n, s)
		case "policy":
			if len(s.Args) != 1 || !slices.Contains([]string{"random", "round_robin", "sequential"}, s.Args[0]) {
				c.r.add(s, Unsupported, "want random, round_robin or sequential")
				continue
			}
			c.r.set("upstream_policy", s.Args[0], s)
		case "health_check", "max_fails", "expire", "prefer_udp", "failfast_all_unhealthy_upstreams":
			c.r.add(s, Note, "clusterdns manages upstream health and connections itself (a failing upstream is skipped and probed until it answers); this option is not needed")
		case "tls_servername":
			if len(s.Args) != 1 {
				c.r.add(s, Unsupported, "want tls_servername NAME")
			}
		case "tls":
			c.r.add(s, Unsupported, "client certificates and private CAs for TLS upstreams are not supported (the system's roots verify tls:// upstreams)")
		case "except":
			c.r.add(s, Unsupported, "names cannot be excepted from forwarding; give them their own stub domain instead")
		default:
			c.r.add(s, Unsupported, "no clusterdns equivalent of this forward option")
		}
	}
	if len(servers) == 0 {
		return
	}
	// The zones this forward covers: FROM inside each of the block's zones.
	var targets []string
	for _, bz := range blockZones {
		switch {
		case from.Zone == ".":
			targets = append(targets, bz)
		case dns.IsSubDomain(bz, from.Zone):
			targets = append(targets, from.Zone)
		}
	}
	for _, z := range targets {
		if z == "." {
			c.r.set("upstreams", servers, d)
			continue
		}
		for _, s := range servers {
			if strings.HasPrefix(s, "/") {
				c.r.add(d, Unsupported, "a stub domain's servers must be addresses, not a resolv.conf file")
				return
			}
		}
		c.r.setStub(strings.TrimSuffix(z, "."), servers, d)
	}
}

// upstream converts a forward destination into an upstreams entry; a
// tls:// one is verified as serverName (tls_servername) when given.
func upstream(to string, forceTCP bool, serverName string) (string, error) {
	if strings.HasPrefix(to, "/") {
		if forceTCP {
			return "", fmt.Errorf("%s with force_tcp: give the servers as addresses to use TCP", to)
		}
		return to, nil
	}
	if scheme, rest, ok := strings.Cut(to, "://"); ok {
		switch scheme {
		case "dns":
			to = rest
		case "tls":
			ap, err := addrPort(rest, 853)
			if err != nil {
				return "", fmt.Errorf("%s: want tls://IP or tls://ip:port", to)
			}
			if serverName != "" {
				return "tls://" + ap.String() + "#" + serverName, nil
			}
			return "tls://" + ap.String(), nil
		default:
			return "", fmt.Errorf("%s: clusterdns forwards over DNS and DNS over TLS only (no %s://)", to, scheme)
		}
	}
	ap, err := addrPort(to, 53)
	if err != nil {
		return "", fmt.Errorf("%s: want an IP address, ip:port or a resolv.conf path", to)
	}
	s := ap.Addr().String()
	if ap.Port() != 53 || forceTCP || ap.Addr().Is6() {
		s = ap.String()
	}
	if forceTCP {
		s = "tcp://" + ap.String()
	}
	return s, nil
}

// addrPort reads an IP address, with port def, or ip:port.
func addrPort(s string, def uint16) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, def), nil
	}
	return netip.ParseAddrPort(s)
}

// cache converts `cache [TTL] [ZONES] { success, denial, prefetch,
// serve_stale }` into the cache_* keys, prefetch and serve_stale.
func (c *conv) cache(d Directive, blockZones []string) {
	c.sawCache = true
	args := d.Args
	if len(args) > 0 {
		if n, err := strconv.Atoi(args[0]); err == nil {
			if n < 0 {
				c.r.add(d, Unsupported, "want a TTL of 0 seconds or more")
			} else {
				c.r.set("cache_max_ttl", fmt.Sprintf("%ds", n), d)
				c.r.set("cache_max_negative_ttl", fmt.Sprintf("%ds", n), d)
			}
			args = args[1:]
		}
	}
	zones := args
	if len(zones) == 0 {
		zones = blockZones
	}
	if !slices.Contains(zones, ".") {
		c.r.add(d, Note, fmt.Sprintf("clusterdns caches every forwarded answer, not only those in %s", strings.TrimSuffix(strings.Join(zones, " "), ".")))
	}
	for _, s := range d.Block {
		switch s.Name {
		case "success", "denial":
			c.cacheCap(s)
		case "prefetch":
			c.sawPrefetch = true
			pct := 10
			if len(s.Args) == 3 {
				n, err := strconv.Atoi(strings.TrimSuffix(s.Args[2], "%"))
				if err != nil || n < 1 || n > 100 {
					c.r.add(s, Unsupported, "want a percentage from 1% to 100%")
					continue
				}
				pct = n
			}
			if len(s.Args) > 3 {
				c.r.add(s, Unsupported, "want prefetch AMOUNT [DURATION [PERCENTAGE%]]")
				continue
			}
			c.r.set("prefetch", pct, s)
			if len(s.Args) > 0 {
				c.r.add(s, Note, "which entries are popular enough to refresh is clusterdns's own rule; AMOUNT and DURATION are not expressed")
			}
		case "serve_stale":
			c.sawStale = true
			dur := "1h"
			if len(s.Args) > 0 {
				if _, err := time.ParseDuration(s.Args[0]); err != nil {
					c.r.add(s, Unsupported, fmt.Sprintf("duration %q: %v", s.Args[0], err))
					continue
				}
				dur = s.Args[0]
			}
			c.r.set("serve_stale", dur, s)
			if len(s.Args) < 2 || s.Args[1] != "verify" {
				c.r.add(s, Note, "clusterdns serves an expired answer only when every upstream fails (CoreDNS's verify mode), not at once while refreshing")
			}
		default:
			c.r.add(s, Unsupported, "no clusterdns equivalent of this cache option")
		}
	}
}

// cacheCap reads `success|denial CAPACITY [TTL [MINTTL]]`.
func (c *conv) cacheCap(s Directive) {
	if len(s.Args) == 0 || len(s.Args) > 3 {
		c.r.add(s, Unsupported, "want "+s.Name+" CAPACITY [TTL [MINTTL]]")
		return
	}
	var n [3]int
	for i, a := range s.Args {
		v, err := strconv.Atoi(a)
		if err != nil || v < 0 {
			c.r.add(s, Unsupported, fmt.Sprintf("%q: want a whole number", a))
			return
		}
		n[i] = v
	}
	if c.capDir == nil {
		c.successCap, c.denialCap = 9984, 9984 // CoreDNS's defaults
		c.capDir = &s
	}
	if s.Name == "success" {
		c.successCap = n[0]
	} else {
		c.denialCap = n[0]
	}
	if len(s.Args) >= 2 {
		key := "cache_max_ttl"
		if s.Name == "denial" {
			key = "cache_max_negative_ttl"
		}
		// The plain `cache TTL` set both; the option's own TTL wins.
		c.r.unset(key)
		c.r.set(key, fmt.Sprintf("%ds", n[1]), s)
	}
	if len(s.Args) == 3 {
		c.r.add(s, Note, "clusterdns has no minimum cache TTL: an answer is cached for its own TTL")
	}
	c.r.add(s, Note, "clusterdns has one cache for positive and negative answers: cache_size is the sum of both capacities")
}
