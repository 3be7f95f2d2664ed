package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// digTimeout bounds one dig run (dig itself gives up after +time × +tries).
const digTimeout = 30 * time.Second

// digResult is dig's answer, parsed from its text output.
type digResult struct {
	cmdline string
	raw     string

	status     string          // NOERROR, NXDOMAIN, ...
	flags      map[string]bool // qr, aa, tc, rd, ra, ...
	counts     map[string]int  // QUERY, ANSWER, AUTHORITY, ADDITIONAL as announced
	question   []string        // question lines without the leading ';'
	answer     []dns.RR
	authority  []dns.RR
	additional []dns.RR // without the OPT pseudo-record
	edns       bool     // the reply carried an OPT record
	udpSize    int      // its advertised buffer size
	retriedTCP bool     // dig saw TC=1 over UDP and asked again over TCP
}

// digBase are the options every structured dig run uses: the full message
// in a parseable form.
var digBase = []string{"+time=2", "+tries=3", "+noall", "+comments", "+question", "+answer", "+authority", "+additional"}

// digCmd returns the command that runs dig with args against s.
func (s *server) digCmd(args []string) (string, []string) {
	argv := append([]string{"@" + s.host, "-p", strconv.Itoa(s.port)}, args...)
	if s.netns != "" {
		return "ip", append([]string{"netns", "exec", s.netns, "dig"}, argv...)
	}
	return "dig", argv
}

// digTry runs dig with digBase plus args and parses its output.
func (s *server) digTry(args ...string) (*digResult, error) {
	name, argv := s.digCmd(append(slices.Clone(digBase), args...))
	cmdline := name + " " + strings.Join(argv, " ")
	out, code, err := runCmd(digTimeout, name, argv...)
	if err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", cmdline, err, out)
	}
	if code != 0 {
		return nil, fmt.Errorf("%s: exit status %d\n%s", cmdline, code, out)
	}
	r, err := parseDig(out)
	if err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", cmdline, err, out)
	}
	r.cmdline = cmdline
	return r, nil
}

// dig is digTry that fails the test when dig gets no answer.
func (s *server) dig(t *testing.T, args ...string) *digResult {
	t.Helper()
	r, err := s.digTry(args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var (
	reStatus = regexp.MustCompile(`status: ([A-Z0-9]+)`)
	reFlags  = regexp.MustCompile(`^;; flags:([^;]*);(.*)$`)
	reCount  = regexp.MustCompile(`([A-Z]+): (\d+)`)
	reUDP    = regexp.MustCompile(`udp: (\d+)`)
)

// parseDig reads the output of dig +noall +comments +question +answer
// +authority +additional. When dig printed more than one message (it
// retried), the last one counts.
func parseDig(out string) (*digResult, error) {
	r := &digResult{raw: out}
	section := ""
	headers := 0
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, ";; ->>HEADER<<-"):
			headers++
			retried := r.retriedTCP
			*r = digResult{raw: out, retriedTCP: retried}
			section = ""
			if m := reStatus.FindStringSubmatch(line); m != nil {
				r.status = m[1]
			}
		case strings.HasPrefix(line, ";; flags:"):
			m := reFlags.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("cannot read flags line %q", line)
			}
			r.flags = map[string]bool{}
			for _, f := range strings.Fields(m[1]) {
				r.flags[f] = true
			}
			r.counts = map[string]int{}
			for _, c := range reCount.FindAllStringSubmatch(m[2], -1) {
				r.counts[c[1]], _ = strconv.Atoi(c[2])
			}
		case strings.Contains(line, "Truncated, retrying in TCP mode"):
			r.retriedTCP = true
		case strings.HasPrefix(line, ";; OPT PSEUDOSECTION:"):
			r.edns = true
			section = "opt"
		case strings.HasPrefix(line, "; EDNS:"):
			if m := reUDP.FindStringSubmatch(line); m != nil {
				r.udpSize, _ = strconv.Atoi(m[1])
			}
		case strings.HasPrefix(line, ";; QUESTION SECTION:"):
			section = "question"
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			section = "answer"
		case strings.HasPrefix(line, ";; AUTHORITY SECTION:"):
			section = "authority"
		case strings.HasPrefix(line, ";; ADDITIONAL SECTION:"):
			section = "additional"
		case strings.HasPrefix(line, ";;"), strings.TrimSpace(line) == "":
			// other comments
		case strings.HasPrefix(line, ";"):
			if section == "question" {
				r.question = append(r.question, strings.TrimPrefix(line, ";"))
			}
		default:
			rr, err := dns.NewRR(line)
			if err != nil {
				return nil, fmt.Errorf("cannot parse record %q: %v", line, err)
			}
			if rr == nil {
				continue
			}
			switch section {
			case "answer":
				r.answer = append(r.answer, rr)
			case "authority":
				r.authority = append(r.authority, rr)
			case "additional":
				r.additional = append(r.additional, rr)
			default:
				return nil, fmt.Errorf("record %q outside a section", line)
			}
		}
	}
	if headers == 0 {
		return nil, fmt.Errorf("no reply header in dig's output")
	}
	if r.flags == nil {
		return nil, fmt.Errorf("no flags line in dig's output")
	}
	return r, nil
}

// --- assertions -----------------------------------------------------------

func (r *digResult) String() string { return r.cmdline + "\n" + r.raw }

// wantStatus checks the rcode.
func (r *digResult) wantStatus(t *testing.T, status string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %s, want %s\n%s", r.status, status, r)
	}
}

// wantFlags checks that every flag named is set.
func (r *digResult) wantFlags(t *testing.T, flags ...string) {
	t.Helper()
	for _, f := range flags {
		if !r.flags[f] {
			t.Errorf("flag %s not set (flags: %s)\n%s", f, r.flagList(), r)
		}
	}
}

// wantNoFlags checks that no flag named is set.
func (r *digResult) wantNoFlags(t *testing.T, flags ...string) {
	t.Helper()
	for _, f := range flags {
		if r.flags[f] {
			t.Errorf("flag %s set (flags: %s)\n%s", f, r.flagList(), r)
		}
	}
}

func (r *digResult) flagList() string {
	var fs []string
	for f := range r.flags {
		fs = append(fs, f)
	}
	slices.Sort(fs)
	return strings.Join(fs, " ")
}

// wantQuestion checks that the question is echoed exactly as asked,
// spelling included.
func (r *digResult) wantQuestion(t *testing.T, qname, qtype string) {
	t.Helper()
	want := []string{dns.Fqdn(qname), "IN", strings.ToUpper(qtype)}
	if len(r.question) != 1 || !slices.Equal(strings.Fields(r.question[0]), want) {
		t.Errorf("question %q, want %q\n%s", r.question, strings.Join(want, " "), r)
	}
}

// wantCountsMatch checks that the section counts in the header agree with
// the records dig printed.
func (r *digResult) wantCountsMatch(t *testing.T) {
	t.Helper()
	if r.counts["ANSWER"] != len(r.answer) || r.counts["AUTHORITY"] != len(r.authority) {
		t.Errorf("header counts %v disagree with %d answer / %d authority records printed\n%s",
			r.counts, len(r.answer), len(r.authority), r)
	}
}

// rrKey is a record's text with the owner name (and every other name)
// lowercased, for comparisons that ignore case.
func rrKey(rr dns.RR) string { return strings.ToLower(rr.String()) }

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil || rr == nil {
		t.Fatalf("bad expected record %q: %v", s, err)
	}
	return rr
}

// wantRecords checks that section holds exactly the records want (text
// form, TTL included), in any order, names compared without case.
func (r *digResult) wantRecords(t *testing.T, section string, want ...string) {
	t.Helper()
	got := r.section(t, section)
	var g, w []string
	for _, rr := range got {
		g = append(g, rrKey(rr))
	}
	for _, s := range want {
		w = append(w, rrKey(mustRR(t, s)))
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s section:\n  got  %q\n  want %q\n%s", section, g, w, r)
	}
}

// wantContains checks that section holds (at least) the records want.
func (r *digResult) wantContains(t *testing.T, section string, want ...string) {
	t.Helper()
	got := map[string]bool{}
	for _, rr := range r.section(t, section) {
		got[rrKey(rr)] = true
	}
	for _, s := range want {
		if k := rrKey(mustRR(t, s)); !got[k] {
			t.Errorf("%s section lacks %q\n%s", section, k, r)
		}
	}
}

func (r *digResult) section(t *testing.T, name string) []dns.RR {
	t.Helper()
	switch name {
	case "answer":
		return r.answer
	case "authority":
		return r.authority
	case "additional":
		return r.additional
	}
	t.Fatalf("no section %q", name)
	return nil
}

// wantNegative checks a negative answer (NXDOMAIN, or NOERROR without
// records): empty answer and exactly the zone's SOA in authority, with the
// negative TTL, so that resolvers can cache it (RFC 2308).
func (r *digResult) wantNegative(t *testing.T, status, zone string) {
	t.Helper()
	r.wantStatus(t, status)
	if len(r.answer) != 0 {
		t.Errorf("answer has %d records, want none\n%s", len(r.answer), r)
	}
	if len(r.authority) != 1 {
		t.Errorf("authority has %d records, want the SOA of %s\n%s", len(r.authority), zone, r)
		return
	}
	soa, ok := r.authority[0].(*dns.SOA)
	if !ok {
		t.Errorf("authority holds %s, want the SOA of %s\n%s", r.authority[0], zone, r)
		return
	}
	if !strings.EqualFold(soa.Hdr.Name, dns.Fqdn(zone)) {
		t.Errorf("SOA owner %s, want %s\n%s", soa.Hdr.Name, dns.Fqdn(zone), r)
	}
	if soa.Hdr.Ttl != negativeTTL {
		t.Errorf("SOA TTL %d in a negative answer, want the negative TTL %d\n%s", soa.Hdr.Ttl, negativeTTL, r)
	}
	if min(soa.Hdr.Ttl, soa.Minttl) != negativeTTL {
		t.Errorf("negative caching time min(SOA TTL %d, MINIMUM %d) = %d, want %d\n%s",
			soa.Hdr.Ttl, soa.Minttl, min(soa.Hdr.Ttl, soa.Minttl), negativeTTL, r)
	}
}
