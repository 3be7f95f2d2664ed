package helm

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// runHelm runs the helm command with its state folders in a temporary one.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// valuesFile writes values (YAML) to a file for --values.
func valuesFile(t *testing.T, values string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(path, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// render runs helm template in kube-system and decodes what it prints.
func render(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := runHelm(t, append([]string{"template", "clusterdns", chartDir, "--namespace", "kube-system"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, out)
	}
	var objs []*unstructured.Unstructured
	docs := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template output: %v\n%s", err, out)
		}
		data, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("helm template output: %v\n%s", err, doc)
		}
		if strings.TrimSpace(string(data)) == "null" {
			continue // an empty document (a template that rendered nothing)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil { // numbers as int64, as the API server sends them
			t.Fatalf("helm template output: %v\n%s", err, doc)
		}
		objs = append(objs, u)
	}
	return objs
}

// find returns the one object of kind and name.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	var have []string
	for _, o := range objs {
		have = append(have, o.GetKind()+"/"+o.GetName())
	}
	t.Fatalf("no %s %s in %v", kind, name, have)
	return nil
}

// field reads a nested field; path elements that are numbers index lists.
func field(t *testing.T, o *unstructured.Unstructured, path ...any) any {
	t.Helper()
	var cur any = o.Object
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("%s/%s: %v is not a map at %q", o.GetKind(), o.GetName(), path, k)
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%s/%s: %v has no item %d", o.GetKind(), o.GetName(), path, k)
			}
			cur = l[k]
		}
	}
	return cur
}

// configOf decodes the clusterdns.yaml of a rendered ConfigMap.
func configOf(t *testing.T, cm *unstructured.Unstructured) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(field(t, cm, "data", "clusterdns.yaml").(string)), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// coreDNSUsersValues are the values a CoreDNS chart user sets, under the
// same keys, plus the node-local cache and the node proxy.
const coreDNSUsersValues = `
replicaCount: 3
image:
  repository: registry.example/clusterdns
  tag: v1.2.3
  pullPolicy: Always
resources:
  requests: {cpu: 100m, memory: 64Mi}
  limits: {memory: 256Mi}
serviceType: ClusterIP
service:
  clusterIP: 10.96.0.10
  annotations: {example.com/owner: dns-team}
prometheus:
  service:
    enabled: true
  monitor:
    enabled: true
    additionalLabels: {release: kube-prometheus-stack}
    interval: 15s
autoscaler:
  enabled: true
  nodesPerReplica: 8
  min: 2
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: node-role.example/dns, operator: Exists}
tolerations:
  - {key: dedicated, operator: Equal, value: dns, effect: NoSchedule}
priorityClassName: dns-critical
config:
  ttl: 30
  pods: insecure
  stub_domains:
    - corp.example=10.0.0.53
nodeLocal:
  enabled: true
nodeproxy:
  enabled: true
`

func TestLint(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args []string
	}{
		{"defaults", nil},
		{"CoreDNS users' values", []string{"--values", valuesFile(t, coreDNSUsersValues)}},
		{"hpa", []string{"--set", "hpa.enabled=true"}},
	} {
		out, err := runHelm(t, append([]string{"lint", "--strict", chartDir}, c.args...)...)
		if err != nil || !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
			t.Errorf("helm lint --strict (%s): %v\n%s", c.name, err, out)
		}
	}
}

func TestTemplateDefaults(t *testing.T) {
	t.Parallel()
	objs := render(t)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+"/"+o.GetName())
		if o.GetKind() != "ClusterRole" && o.GetKind() != "ClusterRoleBinding" && o.GetNamespace() != "kube-system" {
			t.Errorf("%s/%s in namespace %q, want kube-system", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
	want := []string{"ServiceAccount/clusterdns", "ConfigMap/clusterdns", "ClusterRole/clusterdns", "ClusterRoleBinding/clusterdns",
		"Service/kube-dns", "Deployment/clusterdns", "PodDisruptionBudget/clusterdns"}
	for _, w := range want {
		found := false
		for _, k := range kinds {
			found = found || k == w
		}
		if !found {
			t.Errorf("no %s in %v", w, kinds)
		}
	}
	if len(kinds) != len(want) {
		t.Errorf("rendered %v, want exactly %v (options off)", kinds, want)
	}
	d := find(t, objs, "Deployment", "clusterdns")
	pod := []any{"spec", "template", "spec"}
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"spec", "replicas"}, int64(2)},
		{append(pod, "priorityClassName"), "system-cluster-critical"},
		{append(pod, "dnsPolicy"), "Default"},
		{append(pod, "containers", 0, "image"), "clusterdns:latest"},
		{append(pod, "containers", 0, "resources", "limits", "memory"), "128Mi"},
		{append(pod, "tolerations", 0, "key"), "CriticalAddonsOnly"},
		{[]any{"spec", "template", "metadata", "labels", "k8s-app"}, "kube-dns"},
	} {
		if got := field(t, d, c.path...); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Deployment %v = %v, want %v", c.path, got, c.want)
		}
	}
	cfg := configOf(t, find(t, objs, "ConfigMap", "clusterdns"))
	for k, v := range map[string]any{"listen": ":53", "health_listen": ":8080", "metrics_listen": ":9153", "source": "kubernetes", "ttl": float64(5)} {
		if !reflect.DeepEqual(cfg[k], v) {
			t.Errorf("config %s = %v, want %v", k, cfg[k], v)
		}
	}
	svc := find(t, objs, "Service", "kube-dns")
	if got := field(t, svc, "spec", "selector"); !reflect.DeepEqual(got, map[string]any{"k8s-app": "kube-dns"}) {
		t.Errorf("Service selector %v, want k8s-app: kube-dns (CoreDNS's pods keep serving while both run)", got)
	}
	if _, ok := field(t, svc, "spec").(map[string]any)["clusterIP"]; ok {
		t.Errorf("Service has a clusterIP without service.clusterIP")
	}
}

func TestTemplateCoreDNSUsersValues(t *testing.T) {
	t.Parallel()
	objs := render(t, "--values", valuesFile(t, coreDNSUsersValues))
	d := find(t, objs, "Deployment", "clusterdns")
	pod := []any{"spec", "template", "spec"}
	if _, ok := field(t, d, "spec").(map[string]any)["replicas"]; ok {
		t.Errorf("Deployment sets replicas while the autoscaler owns them")
	}
	for _, c := range []struct {
		path []any
		want any
	}{
		{append(pod, "containers", 0, "image"), "registry.example/clusterdns:v1.2.3"},
		{append(pod, "containers", 0, "imagePullPolicy"), "Always"},
		{append(pod, "containers", 0, "resources", "requests", "cpu"), "100m"},
		{append(pod, "priorityClassName"), "dns-critical"},
		{append(pod, "tolerations", 0, "value"), "dns"},
		{append(pod, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms", 0, "matchExpressions", 0, "key"), "node-role.example/dns"},
	} {
		if got := field(t, d, c.path...); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Deployment %v = %v, want %v", c.path, got, c.want)
		}
	}
	cfg := configOf(t, find(t, objs, "ConfigMap", "clusterdns"))
	if cfg["ttl"] != float64(30) || cfg["pods"] != "insecure" || !reflect.DeepEqual(cfg["stub_domains"], []any{"corp.example=10.0.0.53"}) || cfg["listen"] != ":53" {
		t.Errorf("config %v: want ttl 30, pods insecure, the stub domain and listen :53", cfg)
	}
	if got := field(t, find(t, objs, "Service", "kube-dns"), "spec", "clusterIP"); got != "10.96.0.10" {
		t.Errorf("Service clusterIP %v, want 10.96.0.10", got)
	}
	sm := find(t, objs, "ServiceMonitor", "clusterdns")
	if field(t, sm, "spec", "jobLabel") != "k8s-app" || field(t, sm, "metadata", "labels", "release") != "kube-prometheus-stack" || field(t, sm, "spec", "endpoints", 0, "interval") != "15s" {
		t.Errorf("ServiceMonitor %v", sm.Object)
	}
	metrics := find(t, objs, "Service", "clusterdns-metrics")
	if field(t, metrics, "spec", "ports", 0, "port") != int64(9153) || field(t, metrics, "metadata", "labels", "app.kubernetes.io/component") != "metrics" {
		t.Errorf("metrics Service %v", metrics.Object)
	}
	scaler := find(t, objs, "ConfigMap", "clusterdns-autoscaler")
	if got := field(t, scaler, "data", "linear"); !strings.Contains(got.(string), `"nodesPerReplica":8`) || !strings.Contains(got.(string), `"min":2`) {
		t.Errorf("autoscaler parameters %v", got)
	}
	find(t, objs, "Deployment", "clusterdns-autoscaler")
	cache := configOf(t, find(t, objs, "ConfigMap", "clusterdns-node-cache"))
	if cache["listen"] != "169.254.20.10:53" || !reflect.DeepEqual(cache["stub_domains"].([]any)[0], "cluster.local=tcp://10.96.0.10:53") {
		t.Errorf("node cache config %v: want 169.254.20.10:53, cluster.local over TCP to 10.96.0.10", cache)
	}
	find(t, objs, "DaemonSet", "clusterdns-node-cache")
	np := find(t, objs, "DaemonSet", "clusterdns-nodeproxy")
	if field(t, np, "spec", "template", "spec", "hostNetwork") != true {
		t.Errorf("nodeproxy not on the host network")
	}
	// No two workloads select each other's pods.
	var selectors []map[string]any
	for _, o := range objs {
		if o.GetKind() == "Deployment" || o.GetKind() == "DaemonSet" {
			selectors = append(selectors, field(t, o, "spec", "selector", "matchLabels").(map[string]any))
		}
	}
	for i, a := range selectors {
		for j, b := range selectors {
			if i != j && reflect.DeepEqual(a, b) {
				t.Errorf("two workloads share the selector %v", a)
			}
		}
	}
}

// Values that cannot work are refused with a message naming them.
func TestTemplateRefusesBadValues(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "config.listen=:5353"}, "config.listen: set ports.dns"},
		{[]string{"--set", "autoscaler.enabled=true,hpa.enabled=true"}, "choose one way of scaling"},
		{[]string{"--set", "prometheus.monitor.enabled=true"}, "prometheus.monitor.enabled needs prometheus.service.enabled"},
		{[]string{"--set", "nodeLocal.enabled=true"}, "set nodeLocal.clusterDNS or service.clusterIP"},
	} {
		out, err := runHelm(t, append([]string{"template", "clusterdns", chartDir}, c.args...)...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("helm template %v: %v, output %q; want a failure saying %q", c.args, err, out, c.want)
		}
	}
}
