package deploy

import (
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/clusterdns/clusterdns/internal/testenv"
)

const (
	namespace = "kube-system"
	image     = "clusterdns:latest"
	dnsIP     = "10.96.0.10"
	cfgPath   = "/etc/clusterdns/clusterdns.yaml"
)

// baseObjects are the objects of deploy/ (kind/name; the ConfigMap's name
// has a content hash and is checked apart).
var baseObjects = []string{
	"ServiceAccount/clusterdns",
	"ServiceAccount/nodeproxy",
	"ClusterRole/clusterdns",
	"ClusterRoleBinding/clusterdns",
	"ClusterRoleBinding/nodeproxy",
	"ClusterRole/nodeproxy-nodes",
	"ClusterRoleBinding/nodeproxy-nodes",
	"Deployment/clusterdns",
	"PodDisruptionBudget/clusterdns",
	"Service/kube-dns",
	"DaemonSet/nodeproxy",
}

func TestBaseBuilds(t *testing.T) {
	objs := build(t, filepath.Join(repoRoot(t), "deploy"))
	m := index(objs)
	for _, k := range baseObjects {
		if m[k] == nil {
			t.Errorf("deploy/: no %s among %v", k, m.keys())
		}
	}
	m.generated(t, "ConfigMap", "clusterdns")
	if len(objs) != len(baseObjects)+1 {
		t.Errorf("deploy/: %d objects %v, want %d", len(objs), m.keys(), len(baseObjects)+1)
	}
	checkNamespaces(t, objs)
	checkRBAC(t, m)
	checkDeployment(t, m)
	checkService(t, m)
	checkNodeProxy(t, m)
}

func TestNodeLocalOverlayBuilds(t *testing.T) {
	objs := build(t, filepath.Join(repoRoot(t), "deploy", "overlays", "node-local"))
	m := index(objs)
	for _, k := range append(slices.Clone(baseObjects), "DaemonSet/clusterdns-node-cache") {
		if m[k] == nil {
			t.Errorf("overlays/node-local: no %s among %v", k, m.keys())
		}
	}
	checkNamespaces(t, objs)
	// The base is unchanged by the overlay.
	checkRBAC(t, m)
	checkDeployment(t, m)
	checkService(t, m)
	checkNodeProxy(t, m)

	var ds appsv1.DaemonSet
	m.get(t, "DaemonSet", "clusterdns-node-cache", &ds)
	pod := ds.Spec.Template.Spec
	if !pod.HostNetwork || pod.DNSPolicy != corev1.DNSDefault {
		t.Errorf("node cache: hostNetwork %v, dnsPolicy %q; want true, Default", pod.HostNetwork, pod.DNSPolicy)
	}
	if pod.PriorityClassName != "system-node-critical" {
		t.Errorf("node cache: priorityClassName %q", pod.PriorityClassName)
	}
	if !tolerateAll(pod.Tolerations) {
		t.Errorf("node cache: tolerations %+v do not tolerate every taint", pod.Tolerations)
	}
	c := container(t, pod, "clusterdns")
	if c.Image != image || !reflect.DeepEqual(c.Args, []string{"--config", cfgPath}) {
		t.Errorf("node cache: image %q args %q", c.Image, c.Args)
	}
	checkNonRoot(t, "node cache", pod, c)
	cm := m.generated(t, "ConfigMap", "clusterdns-node-cache")
	checkConfigVolume(t, "node cache", pod, c, cm.GetName())

	// The keys are checked against the binary by TestConfigStarts.
	cfg := configOf(t, cm.Object)
	if cfg["listen"] != "169.254.20.10:53" {
		t.Errorf("node cache config: listen %v, want 169.254.20.10:53", cfg["listen"])
	}
	// It forwards cluster.local: it must not serve it.
	if slices.Contains(asStrings(cfg["domains"]), "cluster.local") || cfg["domains"] == nil {
		t.Errorf("node cache config: domains %v: cluster.local would be answered here, not forwarded", cfg["domains"])
	}
	if cfg["source"] != "files" {
		t.Errorf("node cache config: source %v, want files (it does not watch the API)", cfg["source"])
	}
	stubbed := map[string]bool{}
	for _, e := range asStrings(cfg["stub_domains"]) {
		d, servers, _ := strings.Cut(e, "=")
		for _, srv := range strings.Split(servers, ";") {
			stubbed[d] = stubbed[d] || strings.TrimPrefix(strings.TrimPrefix(srv, "tcp://"), "udp://") == dnsIP+":53"
		}
	}
	for _, d := range []string{"cluster.local", "in-addr.arpa", "ip6.arpa"} {
		if !stubbed[d] {
			t.Errorf("node cache config: stub_domains %v do not send %s to the kube-dns Service %s", cfg["stub_domains"], d, dnsIP)
		}
	}
	if len(asStrings(cfg["upstreams"])) == 0 {
		t.Errorf("node cache config: no upstreams")
	}
	if dir, _ := cfg["zones_dir"].(string); !emptyDirAt(pod, c, dir) {
		t.Errorf("node cache: zones_dir %q is not an emptyDir", dir)
	}
	if h, _ := cfg["health_listen"].(string); h != "169.254.20.10:8080" {
		t.Errorf("node cache config: health_listen %q, want 169.254.20.10:8080", h)
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Host != "169.254.20.10" || p.HTTPGet.Port.String() != "health" {
			t.Errorf("node cache: probe %+v, want HTTP GET on 169.254.20.10, port health", p)
		}
	}
}

// emptyDirAt reports whether dir is an emptyDir volume's mount.
func emptyDirAt(pod corev1.PodSpec, c corev1.Container, dir string) bool {
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == dir && dir != "" {
			for _, v := range pod.Volumes {
				if v.Name == vm.Name {
					return v.EmptyDir != nil
				}
			}
		}
	}
	return false
}

// TestRetag: an overlay of the user's own renames the one image everywhere.
func TestRetag(t *testing.T) {
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, filepath.Join(repoRoot(t), "deploy", "overlays", "node-local"))
	if err != nil {
		t.Fatal(err)
	}
	k := "resources:\n  - " + rel + "\n" + // kustomize wants a relative path

		"images:\n  - name: clusterdns\n    newName: registry.example/dns/clusterdns\n    newTag: v1.2.3\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, u := range build(t, dir) {
		var pod corev1.PodTemplateSpec
		switch u.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			index([]*unstructured.Unstructured{u}).get(t, "Deployment", u.GetName(), &d)
			pod = d.Spec.Template
		case "DaemonSet":
			var d appsv1.DaemonSet
			index([]*unstructured.Unstructured{u}).get(t, "DaemonSet", u.GetName(), &d)
			pod = d.Spec.Template
		default:
			continue
		}
		for _, c := range pod.Spec.Containers {
			n++
			if c.Image != "registry.example/dns/clusterdns:v1.2.3" {
				t.Errorf("%s: container %s image %q not retagged", describe(u), c.Name, c.Image)
			}
		}
	}
	if n != 3 {
		t.Errorf("%d containers, want 3 (clusterdns, nodeproxy, node cache)", n)
	}
}

func checkNamespaces(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, u := range objs {
		clusterScoped := strings.HasPrefix(u.GetKind(), "Cluster")
		if clusterScoped && u.GetNamespace() != "" || !clusterScoped && u.GetNamespace() != namespace {
			t.Errorf("%s: in namespace %q", describe(u), u.GetNamespace())
		}
	}
}

func checkRBAC(t *testing.T, m objects) {
	t.Helper()
	var role rbacv1.ClusterRole
	m.get(t, "ClusterRole", "clusterdns", &role)
	read := []string{"get", "list", "watch"}
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"services", "namespaces", "pods"}, Verbs: read},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
		{APIGroups: []string{"multicluster.x-k8s.io"}, Resources: []string{"serviceimports"}, Verbs: read},
	}
	if !reflect.DeepEqual(role.Rules, want) || role.AggregationRule != nil {
		t.Errorf("ClusterRole clusterdns rules:\n%+v\nwant exactly\n%+v", role.Rules, want)
	}
	for _, sa := range []string{"clusterdns", "nodeproxy"} {
		var b rbacv1.ClusterRoleBinding
		m.get(t, "ClusterRoleBinding", sa, &b)
		wantRef := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "clusterdns"}
		wantSubj := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: namespace}}
		if b.RoleRef != wantRef || !reflect.DeepEqual(b.Subjects, wantSubj) {
			t.Errorf("ClusterRoleBinding %s: %+v %+v", sa, b.RoleRef, b.Subjects)
		}
	}
}

func checkDeployment(t *testing.T, m objects) {
	t.Helper()
	var d appsv1.Deployment
	m.get(t, "Deployment", "clusterdns", &d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("Deployment: replicas %v, want 2", d.Spec.Replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		t.Fatalf("Deployment selector: %v", err)
	}
	if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Deployment: selector %v does not match its pods %v", sel, d.Spec.Template.Labels)
	}
	if d.Spec.Template.Labels["k8s-app"] != "kube-dns" {
		t.Errorf("Deployment: pods lack k8s-app: kube-dns (%v)", d.Spec.Template.Labels)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != "clusterdns" || pod.PriorityClassName != "system-cluster-critical" || pod.DNSPolicy != corev1.DNSDefault {
		t.Errorf("Deployment: serviceAccountName %q priorityClassName %q dnsPolicy %q", pod.ServiceAccountName, pod.PriorityClassName, pod.DNSPolicy)
	}
	if pod.HostNetwork {
		t.Errorf("Deployment: hostNetwork")
	}
	spread := false
	for _, c := range pod.TopologySpreadConstraints {
		spread = spread || c.TopologyKey == "kubernetes.io/hostname" && c.LabelSelector != nil && labelsMatch(c.LabelSelector, d.Spec.Template.Labels)
	}
	anti := false
	if a := pod.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			anti = anti || w.PodAffinityTerm.TopologyKey == "kubernetes.io/hostname" && labelsMatch(w.PodAffinityTerm.LabelSelector, d.Spec.Template.Labels)
		}
	}
	if !spread || !anti {
		t.Errorf("Deployment: replicas not spread across nodes (topologySpreadConstraints %v, podAntiAffinity %v)", spread, anti)
	}

	c := container(t, pod, "clusterdns")
	if c.Image != image {
		t.Errorf("Deployment: image %q, want %q", c.Image, image)
	}
	if !reflect.DeepEqual(c.Args, []string{"--config", cfgPath}) || len(c.Command) != 0 {
		t.Errorf("Deployment: command %q args %q, want the image's entrypoint with --config %s", c.Command, c.Args, cfgPath)
	}
	wantPorts := map[string]corev1.ContainerPort{
		"dns":     {Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
		"dns-tcp": {Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
		"health":  {Name: "health", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
		"metrics": {Name: "metrics", ContainerPort: 9153, Protocol: corev1.ProtocolTCP},
	}
	if len(c.Ports) != len(wantPorts) {
		t.Errorf("Deployment: ports %+v", c.Ports)
	}
	for _, p := range c.Ports {
		if p != wantPorts[p.Name] {
			t.Errorf("Deployment: port %+v, want %+v", p, wantPorts[p.Name])
		}
	}
	probe := func(what string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "health" {
			t.Errorf("Deployment: %s probe %+v, want HTTP GET %s on port health", what, p, path)
		}
	}
	probe("readiness", c.ReadinessProbe, "/ready")
	probe("liveness", c.LivenessProbe, "/healthz")
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
		t.Errorf("Deployment: resources %+v: want cpu and memory requests and a memory limit", r)
	}
	if l := c.Lifecycle; l == nil || l.PreStop == nil || l.PreStop.Sleep == nil || l.PreStop.Sleep.Seconds < 1 {
		t.Errorf("Deployment: no preStop sleep: SIGTERM would close the sockets while the Service still sends queries")
	}
	checkNonRoot(t, "Deployment", pod, c)
	checkConfigVolume(t, "Deployment", pod, c, m.generated(t, "ConfigMap", "clusterdns").GetName())

	cfg := configOf(t, m.generated(t, "ConfigMap", "clusterdns").Object)
	want := map[string]any{
		"listen": ":53", "domains": []any{"cluster.local"}, "ttl": float64(5), "negative_ttl": float64(5),
		"pods": "disabled", "log_level": "info", "log_format": "json",
		// The API through the pod's service account; probes reach the pod IP.
		"source": "kubernetes", "health_listen": ":8080",
		// Prometheus scrapes the pod IP on 9153, as CoreDNS's.
		"metrics_listen": ":9153",
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config file:\n%v\nwant\n%v", cfg, want)
	}

	var pdb policyv1.PodDisruptionBudget
	m.get(t, "PodDisruptionBudget", "clusterdns", &pdb)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.String() != "1" || pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget: maxUnavailable %v minAvailable %v, want maxUnavailable 1", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
	}
	if pdb.Spec.Selector == nil || !labelsMatch(pdb.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("PodDisruptionBudget: selector %v does not match the Deployment's pods", pdb.Spec.Selector)
	}
}

func checkService(t *testing.T, m objects) {
	t.Helper()
	var svc corev1.Service
	m.get(t, "Service", "kube-dns", &svc)
	var d appsv1.Deployment
	m.get(t, "Deployment", "clusterdns", &d)
	if svc.Labels["k8s-app"] != "kube-dns" {
		t.Errorf("Service kube-dns: labels %v lack k8s-app: kube-dns", svc.Labels)
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil || svc.Spec.ClusterIP != dnsIP || !netip.MustParsePrefix(testenv.ServiceCIDR).Contains(ip) {
		t.Errorf("Service kube-dns: clusterIP %q, want %s inside %s", svc.Spec.ClusterIP, dnsIP, testenv.ServiceCIDR)
	}
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Service kube-dns: selector %v does not select the Deployment's pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	type port struct {
		name  string
		proto corev1.Protocol
		port  int32
	}
	var got []port
	for _, p := range svc.Spec.Ports {
		got = append(got, port{p.Name, p.Protocol, p.Port})
		if p.TargetPort.IntValue() != int(p.Port) {
			t.Errorf("Service kube-dns: port %s targets %s", p.Name, p.TargetPort.String())
		}
	}
	want := []port{{"dns", "UDP", 53}, {"dns-tcp", "TCP", 53}, {"metrics", "TCP", 9153}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Service kube-dns: ports %v, want %v", got, want)
	}
}

func checkNodeProxy(t *testing.T, m objects) {
	t.Helper()
	var ds appsv1.DaemonSet
	m.get(t, "DaemonSet", "nodeproxy", &ds)
	pod := ds.Spec.Template.Spec
	if !pod.HostNetwork || pod.PriorityClassName != "system-node-critical" || pod.ServiceAccountName != "nodeproxy" {
		t.Errorf("nodeproxy: hostNetwork %v priorityClassName %q serviceAccountName %q", pod.HostNetwork, pod.PriorityClassName, pod.ServiceAccountName)
	}
	if !tolerateAll(pod.Tolerations) {
		t.Errorf("nodeproxy: tolerations %+v do not tolerate every taint", pod.Tolerations)
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			t.Errorf("nodeproxy: hostPath volume %s (%s)", v.Name, v.HostPath.Path)
		}
	}
	c := container(t, pod, "nodeproxy")
	if c.Image != image || !reflect.DeepEqual(c.Command, []string{"/nodeproxy"}) {
		t.Errorf("nodeproxy: image %q command %q", c.Image, c.Command)
	}
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil || sc.Privileged != nil && *sc.Privileged {
		t.Fatalf("nodeproxy: securityContext %+v", sc)
	}
	if !slices.Contains(sc.Capabilities.Add, "NET_ADMIN") || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("nodeproxy: capabilities %+v, want drop ALL, add NET_ADMIN", sc.Capabilities)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("nodeproxy: allowPrivilegeEscalation %v readOnlyRootFilesystem %v", sc.AllowPrivilegeEscalation, sc.ReadOnlyRootFilesystem)
	}
}

// checkNonRoot: user 65532, read-only root, capabilities drop ALL and add
// only NET_BIND_SERVICE, no privilege escalation, RuntimeDefault seccomp.
func checkNonRoot(t *testing.T, what string, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("%s: no container securityContext", what)
	}
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	user := sc.RunAsUser
	if user == nil {
		user = psc.RunAsUser
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if user == nil || *user != 65532 || nonRoot == nil || !*nonRoot {
		t.Errorf("%s: runAsUser %v runAsNonRoot %v, want 65532, true", what, user, nonRoot)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root filesystem not read-only", what)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation not false", what)
	}
	if sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		!reflect.DeepEqual(sc.Capabilities.Add, []corev1.Capability{"NET_BIND_SERVICE"}) {
		t.Errorf("%s: capabilities %+v, want drop ALL, add NET_BIND_SERVICE", what, sc.Capabilities)
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccompProfile %+v, want RuntimeDefault", what, seccomp)
	}
}

// checkConfigVolume: the ConfigMap cm is mounted read-only at /etc/clusterdns.
func checkConfigVolume(t *testing.T, what string, pod corev1.PodSpec, c corev1.Container, cm string) {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != filepath.Dir(cfgPath) {
			continue
		}
		if !vm.ReadOnly {
			t.Errorf("%s: %s mounted read-write", what, vm.MountPath)
		}
		for _, v := range pod.Volumes {
			if v.Name == vm.Name {
				if v.ConfigMap == nil || v.ConfigMap.Name != cm {
					t.Errorf("%s: volume %s is %+v, want ConfigMap %s", what, v.Name, v.VolumeSource, cm)
				}
				return
			}
		}
		t.Errorf("%s: no volume %s", what, vm.Name)
		return
	}
	t.Errorf("%s: nothing mounted at %s", what, filepath.Dir(cfgPath))
}

// configOf parses the clusterdns.yaml key of a ConfigMap.
func configOf(t *testing.T, cm map[string]any) map[string]any {
	t.Helper()
	var c corev1.ConfigMap
	index([]*unstructured.Unstructured{{Object: cm}}).get(t, "ConfigMap", cm["metadata"].(map[string]any)["name"].(string), &c)
	text, ok := c.Data[filepath.Base(cfgPath)]
	if !ok || len(c.Data) != 1 {
		t.Fatalf("ConfigMap %s: keys %v, want only %s", c.Name, slices.Collect(maps.Keys(c.Data)), filepath.Base(cfgPath))
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatalf("ConfigMap %s: %s: %v", c.Name, filepath.Base(cfgPath), err)
	}
	return cfg
}

func container(t *testing.T, pod corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	if len(pod.Containers) != 1 || pod.Containers[0].Name != name {
		t.Fatalf("containers %d, want one named %s", len(pod.Containers), name)
	}
	return pod.Containers[0]
}

func tolerateAll(ts []corev1.Toleration) bool {
	for _, t := range ts {
		if t.Key == "" && t.Operator == corev1.TolerationOpExists && t.Effect == "" {
			return true
		}
	}
	return false
}

func asStrings(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func labelsMatch(sel *metav1.LabelSelector, l map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(l))
}
