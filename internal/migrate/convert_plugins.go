package migrate

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// hosts converts `hosts [FILE [ZONES...]] { INLINE...; ttl; no_reverse;
// reload; fallthrough [ZONES...] }` to the hosts_* keys.
func (c *conv) hosts(d Directive, blockZones []string) {
	file := "/etc/hosts" // CoreDNS's default
	zones := blockZones
	if len(d.Args) > 0 {
		file = d.Args[0]
	}
	if len(d.Args) > 1 {
		zones = nil
		for _, a := range d.Args[1:] {
			k, err := parseKey(a)
			if err != nil {
				c.r.add(d, Unsupported, err.Error())
				return
			}
			zones = append(zones, k.Zone)
		}
	}
	fallthrough_ := false
	var entries []string
	for _, s := range d.Block {
		if _, err := netip.ParseAddr(s.Name); err == nil {
			if len(s.Args) == 0 {
				c.r.add(s, Unsupported, "a hosts line needs at least one name")
				continue
			}
			entries = append(entries, strings.Join(append([]string{s.Name}, s.Args...), " "))
			continue
		}
		switch s.Name {
		case "ttl":
			n, err := strconv.Atoi(strings.Join(s.Args, " "))
			if err != nil || n < 0 || n > 86400 {
				c.r.add(s, Unsupported, "want a TTL from 0 to 86400 seconds")
				continue
			}
			c.r.set("hosts_ttl", n, s)
		case "no_reverse":
			c.r.set("hosts_no_reverse", true, s)
		case "reload":
			if len(s.Args) != 1 {
				c.r.add(s, Unsupported, "want reload DURATION")
				continue
			}
			if _, err := time.ParseDuration(s.Args[0]); err != nil {
				c.r.add(s, Unsupported, fmt.Sprintf("duration %q: %v", s.Args[0], err))
				continue
			}
			c.r.set("hosts_reload", s.Args[0], s)
		case "fallthrough":
			fallthrough_ = true
			if len(s.Args) > 0 && !slices.Equal(s.Args, zones) {
				c.r.add(s, Note, "clusterdns passes on every name the hosts entries do not have, not only those in "+strings.Join(s.Args, " "))
			}
		default:
			c.r.add(s, Unsupported, "no clusterdns equivalent of this hosts option")
		}
	}
	if len(entries) > 0 {
		c.r.appendList("hosts", entries, d)
	}
	c.r.set("hosts_file", file, d)
	if !(len(zones) == 1 && zones[0] == ".") {
		var plain []string
		for _, z := range zones {
			plain = append(plain, strings.TrimSuffix(z, "."))
		}
		c.r.appendList("hosts_zones", plain, d)
	}
	c.r.set("hosts_fallthrough", fallthrough_, d)
}

// The name rewrite match types, as CoreDNS and clusterdns spell them.
var rewriteTypes = []string{"exact", "prefix", "suffix", "substring", "regex"}

// rewrite converts `rewrite [continue|stop] name [TYPE] FROM TO [answer
// ...]` and its block form to rewrite_name rules.
func (c *conv) rewrite(d Directive) {
	args := d.Args
	mode := ""
	if len(args) > 0 && (args[0] == "continue" || args[0] == "stop") {
		mode, args = args[0], args[1:]
	}
	if len(args) == 0 && len(d.Block) > 0 {
		for _, s := range d.Block {
			switch s.Name {
			case "name":
				c.rewriteName(s, mode, s.Args)
			case "answer":
				if len(s.Args) > 0 && s.Args[0] == "value" {
					c.r.add(s, Unsupported, "answer values (CNAME and other targets) are not rewritten; only the name is given back in answers (answer auto)")
					continue
				}
				c.r.add(s, Note, "clusterdns puts the answers under the asked name itself (as answer auto); explicit answer rules are not needed")
			default:
				c.r.add(s, Unsupported, "only name rewrites are supported")
			}
		}
		return
	}
	if len(args) == 0 || args[0] != "name" {
		c.r.add(d, Unsupported, "only name rewrites are supported (not type, class, edns0, ttl, cname or rcode)")
		return
	}
	c.rewriteName(d, mode, args[1:])
}

func (c *conv) rewriteName(d Directive, mode string, args []string) {
	typ := "exact"
	if len(args) > 0 && slices.Contains(rewriteTypes, args[0]) {
		typ, args = args[0], args[1:]
	}
	if len(args) < 2 {
		c.r.add(d, Unsupported, "want name [TYPE] FROM TO")
		return
	}
	from, to, rest := args[0], args[1], args[2:]
	if typ == "regex" {
		if _, err := regexp.Compile(from); err != nil {
			c.r.add(d, Unsupported, fmt.Sprintf("regex %q: %v", from, err))
			return
		}
	}
	if strings.ContainsAny(from+to, " ,") {
		c.r.add(d, Unsupported, "a rule with a space or a comma cannot be written as a rewrite_name entry")
		return
	}
	if len(rest) > 0 {
		if rest[0] != "answer" || (len(rest) > 1 && rest[1] == "value") {
			c.r.add(d, Unsupported, "only the name is rewritten back in answers (answer auto); "+strings.Join(rest, " ")+" is not expressed")
		} else if len(rest) > 1 && rest[1] != "auto" {
			c.r.add(d, Note, "clusterdns puts the answers under the asked name itself (as answer auto); explicit answer rules are not needed")
		}
	}
	rule := typ + " " + from + " " + to
	if mode == "continue" {
		rule = "continue " + rule
	}
	c.r.appendList("rewrite_name", []string{rule}, d)
}
