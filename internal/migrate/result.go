// Package migrate turns the configuration of another cluster DNS server —
// a CoreDNS Corefile or a kube-dns ConfigMap — into a clusterdns YAML
// configuration, and says what it could not carry over.
//
// cmd/clusterdns calls it for `clusterdns import-corefile` and
// `clusterdns import-kube-dns`. It reads files (the Corefile and what it
// imports) and nothing else; it never blocks otherwise.
package migrate

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Level says how a directive was carried over.
type Level int

const (
	// Note: the directive is converted; the finding says what differs in
	// operation (an endpoint's path, a tuning knob clusterdns does not
	// need).
	Note Level = iota
	// Unsupported: the directive, or part of it, is not expressed in the
	// output; answers or operation differ from the source's.
	Unsupported
)

// String is how the level is printed in a finding.
func (l Level) String() string {
	if l == Note {
		return "note"
	}
	return "not converted"
}

// Finding is one thing the import says about a directive.
type Finding struct {
	Where     string // file:line, or the ConfigMap key
	Directive string // as written, shortened
	Level     Level
	Why       string
	file      string // for ordering
	line      int
}

// String is the finding as the import commands print it:
// "where: level: directive: why".
func (f Finding) String() string {
	return fmt.Sprintf("%s: %s: %s: %s", f.Where, f.Level, f.Directive, f.Why)
}

// Result is an import's output: the configuration keys in the order they
// were set, with where each came from, and the findings.
type Result struct {
	Source   string // what was imported, for the header comment
	entries  []entry
	Findings []Finding
}

type entry struct {
	key   string
	value any // string, int, bool, []string or map[string][]string
	from  string
}

// Partial reports whether something was not converted.
func (r *Result) Partial() bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Level == Unsupported })
}

// Get returns the value of a key and whether it was set (for tests and
// callers that check the output).
func (r *Result) Get(key string) (any, bool) {
	for _, e := range r.entries {
		if e.key == key {
			return e.value, true
		}
	}
	return nil, false
}

// set sets a key. A key set before keeps its value unless it is the same;
// a different value is reported (clusterdns has one value for all zones).
func (r *Result) set(key string, v any, d Directive) {
	for _, e := range r.entries {
		if e.key != key {
			continue
		}
		if fmt.Sprint(e.value) != fmt.Sprint(v) {
			r.add(d, Unsupported, fmt.Sprintf("%s %v conflicts with %v from %s; clusterdns has one %s for every zone, the first is kept", key, v, e.value, e.from, key))
		}
		return
	}
	r.entries = append(r.entries, entry{key: key, value: v, from: d.from()})
}

// setDefault sets a key that the source leaves out where clusterdns's
// default differs from the source's behaviour.
func (r *Result) setDefault(key string, v any, why string) {
	if _, ok := r.Get(key); !ok {
		r.entries = append(r.entries, entry{key: key, value: v, from: why})
	}
}

// appendList adds values to a list key, without duplicates.
func (r *Result) appendList(key string, vals []string, d Directive) {
	for i, e := range r.entries {
		if e.key == key {
			l := e.value.([]string)
			for _, v := range vals {
				if !slices.Contains(l, v) {
					l = append(l, v)
				}
			}
			r.entries[i].value = l
			return
		}
	}
	r.entries = append(r.entries, entry{key: key, value: slices.Clone(vals), from: d.from()})
}

// setStub adds servers for a stub domain.
func (r *Result) setStub(domain string, servers []string, d Directive) {
	for i, e := range r.entries {
		if e.key == "stub_domains" {
			m := e.value.(map[string][]string)
			if old, ok := m[domain]; ok && !slices.Equal(old, servers) {
				r.add(d, Unsupported, fmt.Sprintf("domain %s is forwarded to %v already; these servers are dropped", domain, old))
				return
			}
			m[domain] = servers
			r.entries[i].value = m
			return
		}
	}
	r.entries = append(r.entries, entry{key: "stub_domains", value: map[string][]string{domain: servers}, from: d.from()})
}

// sortFindings orders the findings by file and line.
func (r *Result) sortFindings() {
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		if a.file != b.file {
			return strings.Compare(a.file, b.file)
		}
		return a.line - b.line
	})
}

func (r *Result) add(d Directive, l Level, why string) {
	text := strings.Join(append([]string{d.Name}, d.Args...), " ")
	if len(text) > 60 {
		text = text[:57] + "..."
	}
	f := Finding{Where: d.Where(), Directive: text, Level: l, Why: why, file: d.File, line: d.Line}
	if slices.Contains(r.Findings, f) {
		return // a snippet imported twice says it once
	}
	r.Findings = append(r.Findings, f)
}

// WriteYAML writes the configuration as a clusterdns --config file: a
// header naming the source, then one key per line with a comment saying
// which directive it came from.
func (r *Result) WriteYAML(w io.Writer) error {
	doc := &yaml.Node{Kind: yaml.MappingNode}
	for _, e := range r.entries {
		k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: e.key}
		v, err := valueNode(e.value)
		if err != nil {
			return fmt.Errorf("key %s: %w", e.key, err)
		}
		if v.Kind == yaml.ScalarNode || v.Style == yaml.FlowStyle {
			v.LineComment = "from " + e.from
		} else {
			k.LineComment = "from " + e.from
		}
		doc.Content = append(doc.Content, k, v)
	}
	root := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc}}
	root.HeadComment = "clusterdns configuration imported from " + r.Source + "\n(use with: clusterdns --config FILE)"
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return fmt.Errorf("yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("yaml: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func valueNode(v any) (*yaml.Node, error) {
	switch t := v.(type) {
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t}, nil
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(t)}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(t)}, nil
	case []string:
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		if len(t) > 3 || slices.ContainsFunc(t, func(s string) bool { return len(s) > 24 }) {
			n.Style = 0
		}
		for _, s := range t {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s})
		}
		return n, nil
	case map[string][]string:
		n := &yaml.Node{Kind: yaml.MappingNode}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			l, _ := valueNode(t[k])
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, l)
		}
		return n, nil
	}
	return nil, fmt.Errorf("value %v of type %T", v, v)
}
