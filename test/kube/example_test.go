package kube

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"
)

// TestExampleClusterFileVsAPI serves the example cluster (zones/cluster.yaml)
// twice: from the file, and from the API server after applying the same
// manifests with client-go. Every name of the example, asked for several
// types with dig, must get the same reply from both (SOA serials aside).
func TestExampleClusterFileVsAPI(t *testing.T) {
	t.Parallel()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := os.ReadFile(filepath.Join(root, "zones", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	zone, err := os.ReadFile(filepath.Join(root, "zones", "example.test.zone"))
	if err != nil {
		t.Fatal(err)
	}

	api := startAPI(t, dualStackArgs...)
	k := &cluster{t: t, c: api.Client()}
	applyExample(t, k, manifest)

	// The file server serves the embedded example (zones/ as built); the
	// API server one reads the cluster from the API and only the zone file
	// from its folder.
	zonesDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(zonesDir, "example.test.zone"), zone, 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"--pods", "verified"}
	fromFile := startServer(t, append([]string{"--source", "files"}, common...)...)
	fromAPI := startServer(t, kubeArgs(api, append(common, "--zones-dir", zonesDir)...)...)
	fromAPI.waitReady(t, 60*time.Second)
	fromFile.waitReady(t, 10*time.Second)

	queries := exampleQueries(t, manifest)
	t.Logf("comparing %d queries", len(queries))
	// One dig process per server, both at once.
	dir := t.TempDir()
	var fileReplies []*answer
	var fileErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		fileReplies, fileErr = fromFile.digBatch(dir, queries)
	}()
	apiReplies, err := fromAPI.digBatch(dir, queries)
	<-done
	if err != nil || fileErr != nil {
		t.Fatalf("asking the server from the API: %v\nasking the server from the file: %v", err, fileErr)
	}
	differ, answered := 0, 0
	for i, q := range queries {
		a, b := fileReplies[i], apiReplies[i]
		if a.status == "SERVFAIL" {
			t.Errorf("%s %s: SERVFAIL from the file server", q.name, q.qtype)
		}
		if len(a.answer) > 0 {
			answered++
		}
		if na, nb := normalize(a), normalize(b); na != nb {
			differ++
			t.Errorf("%s %s %v: the replies differ\nfrom the file:\n%s\nfrom the API server:\n%s", q.name, q.qtype, q.opts, a.raw, b.raw)
		}
	}
	if answered < len(queries)/3 {
		t.Errorf("only %d of %d queries have answer records: the comparison proves little", answered, len(queries))
	}
	if differ == 0 {
		t.Logf("all %d replies identical (%d with answer records)", len(queries), answered)
	}
}

// applyExample creates the objects of the example manifest through the API:
// namespaces first, then services (default/kubernetes is the API server's
// own, with the same address), slices and pods (their IPs through the
// status subresource).
func applyExample(t *testing.T, k *cluster, manifest []byte) {
	t.Helper()
	var nss []*corev1.Namespace
	var svcs []*corev1.Service
	var sls []*discoveryv1.EndpointSlice
	var pods []*corev1.Pod
	for _, doc := range bytes.Split(manifest, []byte("\n---\n")) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatal(err)
		}
		var obj any
		switch tm.Kind {
		case "Namespace":
			o := &corev1.Namespace{}
			nss, obj = append(nss, o), o
		case "Service":
			o := &corev1.Service{}
			svcs, obj = append(svcs, o), o
		case "EndpointSlice":
			o := &discoveryv1.EndpointSlice{}
			sls, obj = append(sls, o), o
		case "Pod":
			o := &corev1.Pod{}
			pods, obj = append(pods, o), o
		default:
			continue
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s: %v", tm.Kind, err)
		}
	}
	if len(svcs) < 5 || len(sls) < 5 || len(pods) < 2 || len(nss) < 3 {
		t.Fatalf("example cluster: only %d namespaces, %d services, %d slices, %d pods", len(nss), len(svcs), len(sls), len(pods))
	}
	ctx := ctx30(t)
	for _, ns := range nss {
		if _, err := k.c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("namespace %s: %v", ns.Name, err)
		}
	}
	for _, s := range svcs {
		if s.Namespace == "default" && s.Name == "kubernetes" {
			got := waitKubernetesService(t, k)
			if !slices.Equal(got.Spec.ClusterIPs, s.Spec.ClusterIPs) {
				t.Fatalf("the API server's kubernetes service has %v, the example %v", got.Spec.ClusterIPs, s.Spec.ClusterIPs)
			}
			continue
		}
		k.createService(s)
	}
	for _, sl := range sls {
		k.createSlice(sl)
	}
	for _, p := range pods {
		var ips []string
		for _, ip := range p.Status.PodIPs {
			ips = append(ips, ip.IP)
		}
		p.Status = corev1.PodStatus{}
		k.createPod(p, ips...)
	}
}

func waitKubernetesService(t *testing.T, k *cluster) *corev1.Service {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := k.c.CoreV1().Services("default").Get(ctx30(t), "kubernetes", metav1.GetOptions{})
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("default/kubernetes: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type query struct {
	name, qtype string
	opts        []string
}

// exampleQueries lists every name the example cluster defines (read
// through the registry, as the file source reads it), each with the types
// that matter for it, plus names that must not exist.
func exampleQueries(t *testing.T, manifest []byte) []query {
	t.Helper()
	objs, err := registry.ParseManifests("cluster.yaml", manifest)
	if err != nil {
		t.Fatal(err)
	}
	store := registrytest.New(t)
	store.Replace(objs)
	snap := store.Publish()

	const zone = "cluster.local"
	var qs []query
	add := func(name string, types ...string) {
		for _, ty := range types {
			qs = append(qs, query{name: name, qtype: ty})
		}
	}
	addrTypes := []string{"A", "AAAA", "SRV", "TXT", "CNAME", "ANY"}
	add(zone, "SOA", "NS", "A", "TXT", "ANY")
	add("dns-version."+zone, "TXT", "A")
	add("ns.dns."+zone, "A", "AAAA")
	add("dns."+zone, "A")
	add("svc."+zone, "A", "SOA")
	add("pod."+zone, "A")
	add("nothere."+zone, "A")
	for ns := range snap.Namespaces() {
		add(ns+".svc."+zone, "A", "SRV")
		add(ns+".pod."+zone, "A")
		add("nothere."+ns+".svc."+zone, "A", "AAAA")
	}
	ptr := func(ip netip.Addr) {
		rev, err := dns.ReverseAddr(ip.String())
		if err != nil {
			t.Fatal(err)
		}
		add(rev, "PTR")
	}
	for e := range snap.Services() {
		name := e.Name + "." + e.Namespace + ".svc." + zone
		add(name, addrTypes...)
		for _, ip := range e.ClusterIPs {
			ptr(ip)
		}
		protos := map[string]bool{}
		for _, p := range e.Ports {
			proto := "_" + strings.ToLower(string(p.Protocol))
			protos[proto] = true
			if p.Name != "" {
				add("_"+p.Name+"."+proto+"."+name, "SRV", "A")
			}
		}
		for proto := range protos {
			add(proto+"."+name, "SRV")
		}
		for _, ep := range e.Endpoints {
			add(ep.DNSName+"."+name, "A", "AAAA", "SRV")
			ptr(ep.Address)
			for _, p := range ep.Ports() {
				if p.Name != "" {
					add("_"+p.Name+"._"+strings.ToLower(string(p.Protocol))+"."+name, "SRV")
				}
			}
		}
	}
	for p := range snap.Pods() {
		for _, ip := range p.IPs {
			add(registry.DashedIP(ip)+"."+p.Namespace+".pod."+zone, "A", "AAAA")
			add(registry.DashedIP(ip)+".kube-system.pod."+zone, "A") // the wrong namespace
			ptr(ip)
		}
	}
	// Case is echoed; the answers are the same.
	add("Web-Server-Service.DEFAULT.svc.Cluster.Local", "A", "SRV")
	// The static zone next to the cluster, and an alias chased into it.
	add("www.example.test", "A", "AAAA")
	add("api.example.test", "A")
	// Over TCP and without EDNS as well, for a few.
	for _, name := range []string{"cassandra.data.svc." + zone, "_cql._tcp.cassandra.data.svc." + zone} {
		qs = append(qs, query{name: name, qtype: "SRV", opts: []string{"+tcp"}}, query{name: name, qtype: "SRV", opts: []string{"+noedns"}})
	}
	// Duplicates (a PTR of an address two services share) once.
	slices.SortFunc(qs, func(a, b query) int {
		return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
	})
	return slices.CompactFunc(qs, func(a, b query) bool { return fmt.Sprint(a) == fmt.Sprint(b) })
}

var soaSerial = regexp.MustCompile(`(IN\s+SOA\s+\S+\s+\S+\s+)\d+`)

// normalize renders a reply for comparison: rcode, flags and every
// section, with SOA serials zeroed (each server numbers its own versions)
// and the records of a section sorted (address runs rotate per query).
func normalize(a *answer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "status %s flags %v\n", a.status, a.flags)
	for _, sec := range []struct {
		name string
		rrs  []dns.RR
	}{{"answer", a.answer}, {"authority", a.authority}, {"additional", a.additional}} {
		fmt.Fprintf(&b, "%s:\n", sec.name)
		var lines []string
		for _, rr := range sec.rrs {
			lines = append(lines, soaSerial.ReplaceAllString(rr.String(), "${1}0"))
		}
		slices.Sort(lines)
		b.WriteString(strings.Join(lines, "\n") + "\n")
	}
	return b.String()
}
