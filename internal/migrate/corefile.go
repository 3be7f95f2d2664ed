package migrate

import (
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/coredns/caddy/caddyfile"
	"github.com/miekg/dns"
)

// ServerBlock is one server block of a Corefile: the zones it serves (with
// their port and scheme) and its directives in the order they appear.
type ServerBlock struct {
	Keys       []Key
	Directives []Directive
	File       string
	Line       int // line of the block's first directive (0 for an empty block)
}

// Key is one address of a server block, such as `.:53` or
// `dns://cluster.local:53`.
type Key struct {
	Raw    string
	Scheme string // "dns" unless written otherwise
	Zone   string // lower-case, fully qualified ("." for the root)
	Port   string // "53" unless written otherwise
}

// Directive is one line of a server block or of a directive's block: its
// name, arguments on the same line, and the lines of its `{ }` block.
type Directive struct {
	Name  string
	Args  []string
	Block []Directive
	File  string
	Line  int
}

// Where returns "file:line" of the directive (the file alone without a
// line).
func (d Directive) Where() string {
	if d.Line == 0 {
		return d.File
	}
	return fmt.Sprintf("%s:%d", d.File, d.Line)
}

// ParseCorefile lexes and parses a Corefile with CoreDNS's own Caddyfile
// parser (github.com/coredns/caddy/caddyfile): quoting, comments,
// environment variables ({$VAR} and {%VAR%}), `import` of files and globs
// (relative to filename) and snippets are handled as CoreDNS handles them.
// filename is used for imports and positions; src is read to the end.
func ParseCorefile(filename string, src io.Reader) ([]ServerBlock, error) {
	blocks, err := caddyfile.Parse(filename, src, nil)
	if err != nil {
		return nil, fmt.Errorf("corefile %s: %w", filename, err)
	}
	var out []ServerBlock
	for _, b := range blocks {
		sb := ServerBlock{File: filename}
		for _, k := range b.Keys {
			key, err := parseKey(k)
			if err != nil {
				return nil, fmt.Errorf("corefile %s: server block %q: %w", filename, strings.Join(b.Keys, " "), err)
			}
			sb.Keys = append(sb.Keys, key)
		}
		for name, toks := range b.Tokens {
			for i := range toks {
				if toks[i].File == "" {
					toks[i].File = filename // the parser names imported files only
				}
			}
			ds, err := splitDirectives(name, toks)
			if err != nil {
				return nil, fmt.Errorf("corefile %s: %w", filename, err)
			}
			sb.Directives = append(sb.Directives, ds...)
		}
		// The parser groups tokens by directive name; put them back in the
		// order they were written (imported files after the main one's
		// lines that precede them is the best the grouping leaves).
		sort.SliceStable(sb.Directives, func(i, j int) bool {
			a, b := sb.Directives[i], sb.Directives[j]
			if a.File != b.File {
				return a.File == filename
			}
			return a.Line < b.Line
		})
		if len(sb.Directives) > 0 {
			sb.Line = sb.Directives[0].Line
			sb.File = sb.Directives[0].File
		}
		out = append(out, sb)
	}
	return out, nil
}

// from names the directive in the output's comments: file base name,
// line and name.
func (d Directive) from() string {
	w := filepath.Base(d.File)
	if d.Line > 0 {
		w += ":" + strconv.Itoa(d.Line)
	}
	return w + " " + d.Name
}

// parseKey reads `[scheme://]zone[:port]`. A zone may also be a CIDR
// (10.0.0.0/24), which CoreDNS turns into its reverse zone.
func parseKey(raw string) (Key, error) {
	k := Key{Raw: raw, Scheme: "dns", Port: "53"}
	rest := raw
	if s, r, ok := strings.Cut(rest, "://"); ok {
		k.Scheme, rest = strings.ToLower(s), r
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[:i], ":") {
		port := rest[i+1:]
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return k, fmt.Errorf("port %q: want a number from 0 to 65535", port)
		}
		k.Port, rest = port, rest[:i]
	}
	if strings.Contains(rest, "/") {
		z, err := cidrZone(rest)
		if err != nil {
			return k, err
		}
		k.Zone = z
		return k, nil
	}
	if rest == "" {
		rest = "."
	}
	if _, ok := dns.IsDomainName(rest); !ok {
		return k, fmt.Errorf("zone %q: not a domain name", rest)
	}
	k.Zone = dns.CanonicalName(rest)
	return k, nil
}

// cidrZone turns an IPv4 CIDR on an octet boundary into its in-addr.arpa
// zone (10.96.0.0/12 is refused: CoreDNS would serve several zones).
func cidrZone(cidr string) (string, error) {
	ip, bits, ok := strings.Cut(cidr, "/")
	n, err := strconv.Atoi(bits)
	octets := strings.Split(ip, ".")
	if !ok || err != nil || len(octets) != 4 || n%8 != 0 || n == 0 || n > 32 {
		return "", fmt.Errorf("zone %q: only IPv4 networks on an octet boundary (/8, /16, /24) are understood", cidr)
	}
	var labels []string
	for i := n/8 - 1; i >= 0; i-- {
		if v, err := strconv.Atoi(octets[i]); err != nil || v < 0 || v > 255 {
			return "", fmt.Errorf("zone %q: not an IPv4 network", cidr)
		}
		labels = append(labels, octets[i])
	}
	return strings.Join(labels, ".") + ".in-addr.arpa.", nil
}

// splitDirectives cuts the tokens the parser grouped under one directive
// name into its occurrences (a new one starts where the name begins a line
// outside any block) and each occurrence into lines and blocks.
func splitDirectives(name string, toks []caddyfile.Token) ([]Directive, error) {
	var out []Directive
	for len(toks) > 0 {
		d, rest, err := readLine(toks)
		if err != nil {
			return nil, err
		}
		if d.Name != name {
			return nil, fmt.Errorf("%s:%d: unexpected %q", d.File, d.Line, d.Name)
		}
		out = append(out, d)
		toks = rest
	}
	return out, nil
}

// readLine reads one directive line starting at toks[0]: the arguments on
// its line and, when the line ends in "{", the block's lines up to "}".
func readLine(toks []caddyfile.Token) (Directive, []caddyfile.Token, error) {
	first := toks[0]
	d := Directive{Name: first.Text, File: first.File, Line: first.Line}
	i := 1
	for i < len(toks) && sameLine(toks[i], first) && toks[i].Text != "{" && toks[i].Text != "}" {
		d.Args = append(d.Args, toks[i].Text)
		i++
	}
	if i < len(toks) && sameLine(toks[i], first) && toks[i].Text == "{" {
		i++
		for {
			if i >= len(toks) {
				return d, nil, fmt.Errorf("%s:%d: %s: block not closed", d.File, d.Line, d.Name)
			}
			if toks[i].Text == "}" {
				i++
				break
			}
			sub, rest, err := readLine(toks[i:])
			if err != nil {
				return d, nil, err
			}
			d.Block = append(d.Block, sub)
			i = len(toks) - len(rest)
		}
	}
	return d, toks[i:], nil
}

func sameLine(a, b caddyfile.Token) bool { return a.Line == b.Line && a.File == b.File }
