package monitoring

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/clusterdns/clusterdns/internal/testbin"
)

// selector is a metric a query reads and the labels it needs that series
// to carry: those it matches on and those it groups by (Prometheus's own
// job and instance excepted).
type selector struct {
	metric string
	labels []string
	where  string // the rule or panel, for messages
}

// prometheusOwn are the series Prometheus makes itself (not exported by
// any target): the rules may use them.
var prometheusOwn = map[string]bool{"up": true}

// targetLabels are added by Prometheus to every scraped series.
var targetLabels = map[string]bool{"job": true, "instance": true, "__name__": true}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func newParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// selectorsOf parses a PromQL expression and lists what it reads.
func selectorsOf(p parser.Parser, expr, where string) ([]selector, error) {
	e, err := p.ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	byMetric := map[string]map[string]bool{}
	note := func(vs *parser.VectorSelector, grouping []string) {
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel {
				name = m.Value
			}
		}
		if byMetric[name] == nil {
			byMetric[name] = map[string]bool{}
		}
		for _, m := range vs.LabelMatchers {
			if !targetLabels[m.Name] {
				byMetric[name][m.Name] = true
			}
		}
		for _, g := range grouping {
			if !targetLabels[g] {
				byMetric[name][g] = true
			}
		}
	}
	// Every selector, and the labels of the aggregations (sum by ...) over it.
	var walk func(n parser.Node, grouping []string)
	walk = func(n parser.Node, grouping []string) {
		switch n := n.(type) {
		case *parser.VectorSelector:
			note(n, grouping)
			return
		case *parser.AggregateExpr:
			if !n.Without {
				grouping = n.Grouping
			}
		}
		for _, c := range parser.Children(n) {
			walk(c, grouping)
		}
	}
	walk(e, nil)
	var out []selector
	for name, labels := range byMetric {
		s := selector{metric: name, where: where}
		for l := range labels {
			s.labels = append(s.labels, l)
		}
		sort.Strings(s.labels)
		out = append(out, s)
	}
	return out, nil
}

// ruleSelectors parses deploy/monitoring/prometheusrule.yaml: its spec is a
// Prometheus rule file, which rulefmt checks (YAML, rule fields, PromQL of
// every expr, templates of annotations).
func ruleSelectors(t *testing.T) (alerts []string, sels []selector) {
	t.Helper()
	path := filepath.Join(repoRoot(t), "deploy", "monitoring", "prometheusrule.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string            `json:"name"`
			Namespace string            `json:"namespace"`
			Labels    map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec map[string]any `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(data, &obj, yaml.DisallowUnknownFields); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if obj.APIVersion != "monitoring.coreos.com/v1" || obj.Kind != "PrometheusRule" {
		t.Fatalf("%s is a %s %s, want a monitoring.coreos.com/v1 PrometheusRule", path, obj.APIVersion, obj.Kind)
	}
	spec, err := yaml.Marshal(obj.Spec)
	if err != nil {
		t.Fatal(err)
	}
	p := newParser()
	groups, errs := rulefmt.Parse(spec, false, model.UTF8Validation, p, slog.Default())
	if len(errs) > 0 {
		t.Fatalf("%s: rulefmt: %v", path, errs)
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert
			if name == "" {
				name = r.Record
			}
			alerts = append(alerts, name)
			s, err := selectorsOf(p, r.Expr, "rule "+name)
			if err != nil {
				t.Fatal(err)
			}
			sels = append(sels, s...)
		}
	}
	return alerts, sels
}

// grafanaVariables are replaced by values of the right kind before a panel
// query is parsed: Grafana substitutes them before Prometheus sees it.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// labelValues is Grafana's label_values(selector, label) variable query.
var labelValues = regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// dashboardSelectors parses every query of deploy/monitoring/grafana-dashboard.json:
// the panels' targets and the templating variables.
func dashboardSelectors(t *testing.T) (queries int, sels []selector) {
	t.Helper()
	path := filepath.Join(repoRoot(t), "deploy", "monitoring", "grafana-dashboard.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string `json:"title"`
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if dash.Title == "" || dash.UID == "" {
		t.Errorf("%s: no title or uid", path)
	}
	p := newParser()
	add := func(expr, where string) {
		s, err := selectorsOf(p, grafanaVariables.Replace(expr), where)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return
		}
		queries++
		sels = append(sels, s...)
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("%s: variable %s: %v", path, v.Name, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("%s: variable %s: %q is not label_values(selector, label)", path, v.Name, q.Query)
			continue
		}
		add(m[1], "variable "+v.Name)
		if !targetLabels[m[2]] {
			sels[len(sels)-1].labels = append(sels[len(sels)-1].labels, m[2])
		}
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, pn := range ps {
			for _, tg := range pn.Targets {
				add(tg.Expr, fmt.Sprintf("panel %q", pn.Title))
			}
			walk(pn.Panels)
		}
	}
	walk(dash.Panels)
	return queries, sels
}

type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// TestRulesAndDashboardParse needs no server: the rules are valid for
// Prometheus, name the alerts kube-prometheus has for CoreDNS, and every
// dashboard query parses.
func TestRulesAndDashboardParse(t *testing.T) {
	alerts, sels := ruleSelectors(t)
	for _, want := range []string{"CoreDNSDown", "CoreDNSLatencyHigh", "CoreDNSErrorsHigh", "CoreDNSForwardLatencyHigh", "CoreDNSForwardErrorsHigh", "CoreDNSForwardHealthcheckFailureCount"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s in the PrometheusRule (have %v)", want, alerts)
		}
	}
	if len(sels) == 0 {
		t.Fatal("the rules read no metric")
	}
	n, dsels := dashboardSelectors(t)
	if n < 20 || len(dsels) < n {
		t.Errorf("%d dashboard queries reading %d series, want at least 20", n, len(dsels))
	}
	names := map[string]bool{}
	for _, s := range dsels {
		names[s.metric] = true
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{"coredns_dns_requests_total", "coredns_dns_responses_total", "coredns_dns_request_duration_seconds_bucket",
		"coredns_cache_hits_total", "coredns_cache_requests_total", "coredns_forward_responses_total", "coredns_forward_healthcheck_failures_total",
		"coredns_kubernetes_dns_programming_duration_seconds_bucket"} {
		if !names[want] {
			t.Errorf("the dashboard does not read %s", want)
		}
	}
}
