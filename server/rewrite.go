package server

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// RewriteRule is one question-name rewrite (CoreDNS `rewrite name`),
// written "[continue|stop] [exact|prefix|suffix|substring|regex] FROM TO":
//
//   - exact: the whole name is FROM (a fully qualified name; the trailing
//     dot may be left out) → TO;
//   - prefix: a name starting with FROM gets TO instead of that start;
//   - suffix: a name ending with FROM (fully qualified) gets TO (fully
//     qualified) instead of that end;
//   - substring: every FROM in the name becomes TO;
//   - regex: a name matching the Go regular expression FROM (the name is
//     fully qualified, with its trailing dot) becomes TO, where {1}, {2}...
//     stand for FROM's groups.
//
// Names are matched in lower case. Without a type the rule is exact. The
// first rule that matches ends the rewriting unless it says continue.
type RewriteRule struct {
	Type     string
	From, To string
	Continue bool
	re       *regexp.Regexp
}

// ParseRewriteRule reads one rule; the configuration loader calls it so
// that a bad rule is refused at start or reload.
func ParseRewriteRule(s string) (RewriteRule, error) {
	f := strings.Fields(s)
	var r RewriteRule
	if len(f) > 0 && (f[0] == "continue" || f[0] == "stop") {
		r.Continue, f = f[0] == "continue", f[1:]
	}
	r.Type = "exact"
	if len(f) == 3 {
		r.Type, f = f[0], f[1:]
	}
	if len(f) != 2 {
		return r, fmt.Errorf("rewrite rule %q: want [continue|stop] [exact|prefix|suffix|substring|regex] FROM TO", s)
	}
	r.From, r.To = strings.ToLower(f[0]), strings.ToLower(f[1])
	switch r.Type {
	case "exact", "suffix":
		r.From, r.To = dns.Fqdn(r.From), dns.Fqdn(r.To)
	case "prefix", "substring":
	case "regex":
		re, err := regexp.Compile(f[0])
		if err != nil {
			return r, fmt.Errorf("rewrite rule %q: %w", s, err)
		}
		r.re, r.From, r.To = re, f[0], f[1]
	default:
		return r, fmt.Errorf("rewrite rule %q: type %q: want exact, prefix, suffix, substring or regex", s, r.Type)
	}
	if r.From == "" || (r.Type != "substring" && r.Type != "prefix" && r.To == "") {
		return r, fmt.Errorf("rewrite rule %q: empty name", s)
	}
	return r, nil
}

// apply rewrites a lower-case fully qualified name; ok is false when the
// rule does not match.
func (r *RewriteRule) apply(name string) (string, bool) {
	switch r.Type {
	case "exact":
		if name == r.From {
			return r.To, true
		}
	case "prefix":
		if strings.HasPrefix(name, r.From) {
			return r.To + name[len(r.From):], true
		}
	case "suffix":
		if strings.HasSuffix(name, r.From) {
			return name[:len(name)-len(r.From)] + r.To, true
		}
	case "substring":
		if strings.Contains(name, r.From) {
			return strings.ReplaceAll(name, r.From, r.To), true
		}
	case "regex":
		m := r.re.FindStringSubmatch(name)
		if m == nil {
			return "", false
		}
		out := r.To
		for i := len(m) - 1; i >= 1; i-- { // {10} before {1}
			out = strings.ReplaceAll(out, "{"+strconv.Itoa(i)+"}", m[i])
		}
		return dns.Fqdn(strings.ToLower(out)), true
	}
	return "", false
}

// Rewriter applies name rewrite rules to questions before they are
// answered, and gives the answer back under the asked name.
type Rewriter struct {
	rules []RewriteRule
}

// NewRewriter parses rules (ParseRewriteRule); no rules gives nil, which
// the handler skips.
func NewRewriter(rules []string) (*Rewriter, error) {
	var rw Rewriter
	for _, s := range rules {
		r, err := ParseRewriteRule(s)
		if err != nil {
			return nil, err
		}
		rw.rules = append(rw.rules, r)
	}
	if len(rw.rules) == 0 {
		return nil, nil
	}
	return &rw, nil
}

// Rewrite returns the name a question for name (fully qualified) is
// answered for, and whether a rule matched.
func (rw *Rewriter) Rewrite(name string) (string, bool) {
	cur, matched := strings.ToLower(dns.Fqdn(name)), false
	for i := range rw.rules {
		next, ok := rw.rules[i].apply(cur)
		if !ok {
			continue
		}
		if _, valid := dns.IsDomainName(next); !valid {
			continue
		}
		cur, matched = next, true
		if !rw.rules[i].Continue {
			break
		}
	}
	return cur, matched
}

// rewriteHandle answers a request whose question a rule rewrites: the
// rewritten question goes through handle (and maybe upstream), and its
// response is given back with the question as asked and the records owned
// by the rewritten name under the asked name (CoreDNS's `answer auto`).
// handled is false when no rule matches. Only servers with rules pay for
// this: every question's name is unpacked (one allocation) and checked,
// and a rewritten one is unpacked and packed with miekg/dns.
func (h *Handler) rewriteHandle(req, out []byte, client netip.AddrPort, tcp bool, send func(netip.AddrPort, []byte)) (res Result, handled bool) {
	if len(req) <= headerLen {
		return Result{}, false
	}
	// The rules first, on the name alone: most questions match none.
	asked, _, err := dns.UnpackDomainName(req, headerLen)
	if err != nil {
		return Result{}, false
	}
	name, ok := h.opt.Rewrite.Rewrite(asked)
	if !ok || name == strings.ToLower(asked) {
		return Result{}, false
	}
	var m dns.Msg
	if err := m.Unpack(req); err != nil || len(m.Question) != 1 || m.Response {
		return Result{}, false
	}
	m.Question[0].Name = name
	inner, err := m.Pack()
	if err != nil {
		return Result{}, false
	}
	limit := dns.MaxMsgSize
	if !tcp {
		limit = dns.MinMsgSize
		if o := m.IsEdns0(); o != nil {
			limit = max(int(o.UDPSize()), dns.MinMsgSize)
		}
	}
	back := func(r []byte) []byte {
		var rm dns.Msg
		if err := rm.Unpack(r); err != nil || len(rm.Question) != 1 {
			return r
		}
		rm.Question[0].Name = asked
		for _, sec := range [][]dns.RR{rm.Answer, rm.Ns, rm.Extra} {
			for _, rr := range sec {
				if strings.EqualFold(rr.Header().Name, name) {
					rr.Header().Name = asked
				}
			}
		}
		rm.Compress = true
		wire, err := rm.Pack()
		if err == nil && len(wire) > limit {
			rm.Truncate(limit)
			wire, err = rm.Pack()
		}
		if err != nil {
			h.log.Error("rewritten answer not packed", "name", asked, "err", err)
			return r
		}
		return wire
	}
	res = h.handle(inner, out, client, tcp, func(c netip.AddrPort, r []byte) { send(c, back(r)) })
	if res.Msg != nil {
		res.Msg = back(res.Msg)
	}
	return res, true
}
