package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/clusterdns/clusterdns/internal/testenv"
)

const fieldManager = "clusterdns-test"

// TestAPIServer applies the base and the node-local overlay to a real
// kube-apiserver with server-side apply, checks what admission makes of the
// workloads' pods, that the ServiceAccounts may read and not write, and
// runs clusterdns with the base's config file and the clusterdns
// ServiceAccount's token against it.
func TestAPIServer(t *testing.T) {
	t.Parallel()
	api := testenv.StartAPIServer(t)
	client := api.Client()
	root := repoRoot(t)
	base := build(t, filepath.Join(root, "deploy"))
	overlay := build(t, filepath.Join(root, "deploy", "overlays", "node-local"))
	ap := newApplier(t, api)

	t.Run("apply", func(t *testing.T) {
		ctx := apiContext(t)
		// The kube-dns Service kubeadm creates for CoreDNS: ours is applied
		// over it, in place.
		kubeadm := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: namespace,
				Labels:      map[string]string{"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
				Annotations: map[string]string{"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
			Spec: corev1.ServiceSpec{
				ClusterIP: dnsIP,
				Selector:  map[string]string{"k8s-app": "kube-dns"},
				Ports: []corev1.ServicePort{
					{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
					{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
					{Name: "metrics", Port: 9153, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9153)},
				},
			},
		}
		old, err := client.CoreV1().Services(namespace).Create(ctx, kubeadm, metav1.CreateOptions{FieldManager: "kubeadm"})
		if err != nil {
			t.Fatalf("kubeadm's kube-dns Service: %v", err)
		}
		for _, set := range []struct {
			name string
			objs []*unstructured.Unstructured
		}{{"deploy/", base}, {"deploy/overlays/node-local/", overlay}} {
			for _, u := range set.objs {
				got, err := ap.apply(ctx, u)
				if err != nil {
					t.Errorf("%s: %s refused: %v", set.name, describe(u), err)
					continue
				}
				if got.GetUID() == "" || got.GetManagedFields() == nil {
					t.Errorf("%s: %s: applied object has no uid or managed fields", set.name, describe(u))
				}
			}
		}
		svc, err := client.CoreV1().Services(namespace).Get(ctx, "kube-dns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Spec.ClusterIP != dnsIP {
			t.Errorf("kube-dns: clusterIP %s, want %s (service range %s)", svc.Spec.ClusterIP, dnsIP, testenv.ServiceCIDR)
		}
		if svc.UID != old.UID {
			t.Errorf("kube-dns: replaced (uid %s, was %s), want updated in place", svc.UID, old.UID)
		}
		if want := map[string]string{"k8s-app": "kube-dns"}; !reflect.DeepEqual(svc.Spec.Selector, want) {
			t.Errorf("kube-dns: selector %v, want %v", svc.Spec.Selector, want)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("pods", func(t *testing.T) {
		ctx := apiContext(t)
		// What the ReplicaSet and DaemonSet controllers would create (there
		// is no controller-manager): the templates as pods, dry-run, through
		// admission (Priority, PodSecurity) and validation.
		want := map[string]struct {
			class    string
			priority int32
		}{
			"Deployment/clusterdns":           {"system-cluster-critical", 2000000000},
			"DaemonSet/nodeproxy":             {"system-node-critical", 2000001000},
			"DaemonSet/clusterdns-node-cache": {"system-node-critical", 2000001000},
		}
		for _, class := range []string{"system-cluster-critical", "system-node-critical"} {
			if _, err := client.SchedulingV1().PriorityClasses().Get(ctx, class, metav1.GetOptions{}); err != nil {
				t.Errorf("built-in PriorityClass %s: %v", class, err)
			}
		}
		m := index(overlay)
		for key, w := range want {
			kind, name, _ := strings.Cut(key, "/")
			var tmpl corev1.PodTemplateSpec
			switch kind {
			case "Deployment":
				var d appsv1.Deployment
				m.get(t, kind, name, &d)
				tmpl = d.Spec.Template
			case "DaemonSet":
				var d appsv1.DaemonSet
				m.get(t, kind, name, &d)
				tmpl = d.Spec.Template
			}
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name + "-dry-run", Namespace: namespace, Labels: tmpl.Labels},
				Spec:       tmpl.Spec,
			}
			pod.Spec.NodeName = "node-1"
			got, err := client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
			if err != nil {
				t.Errorf("%s: its pod is refused: %v", key, err)
				continue
			}
			if got.Spec.PriorityClassName != w.class || got.Spec.Priority == nil || *got.Spec.Priority != w.priority {
				t.Errorf("%s: pod priority %s/%v, want %s/%d", key, got.Spec.PriorityClassName, got.Spec.Priority, w.class, w.priority)
			}
		}
	})

	t.Run("access", func(t *testing.T) {
		ctx := apiContext(t)
		read := []string{"get", "list", "watch"}
		write := []string{"create", "update", "patch", "delete", "deletecollection"}
		resources := []struct{ group, resource string }{
			{"", "services"}, {"discovery.k8s.io", "endpointslices"}, {"", "namespaces"}, {"", "pods"},
			{"multicluster.x-k8s.io", "serviceimports"},
		}
		for _, sa := range []string{"clusterdns", "nodeproxy"} {
			user := "system:serviceaccount:" + namespace + ":" + sa
			// RBAC's informers see the binding a moment after it is written.
			waitAllowed(ctx, t, client, user, "list", "", "services")
			for _, r := range resources {
				for _, ns := range []string{"", "default"} {
					for _, verb := range read {
						if ok, why := allowed(ctx, t, client, user, verb, r.group, r.resource, ns); !ok {
							t.Errorf("%s: %s %s (namespace %q) denied: %s", user, verb, r.resource, ns, why)
						}
					}
					for _, verb := range write {
						if ok, why := allowed(ctx, t, client, user, verb, r.group, r.resource, ns); ok {
							t.Errorf("%s: %s %s (namespace %q) allowed: %s", user, verb, r.resource, ns, why)
						}
					}
				}
			}
			for _, verb := range append(read, "create") {
				if ok, why := allowed(ctx, t, client, user, verb, "", "secrets", ""); ok {
					t.Errorf("%s: %s secrets allowed: %s", user, verb, why)
				}
			}
			for _, r := range []struct{ group, resource string }{{"", "configmaps"}, {"", "nodes"}, {"", "endpoints"}, {"apps", "deployments"}} {
				if ok, why := allowed(ctx, t, client, user, "update", r.group, r.resource, ""); ok {
					t.Errorf("%s: update %s allowed: %s", user, r.resource, why)
				}
			}
			// Only the node proxy reads Nodes (its zone label and IPs).
			if ok, why := allowed(ctx, t, client, user, "get", "", "nodes", ""); ok != (sa == "nodeproxy") {
				t.Errorf("%s: get nodes allowed %v: %s", user, ok, why)
			}
		}
	})

	t.Run("clusterdns", func(t *testing.T) {
		// The base's config file, as the Deployment's pod runs it, reading
		// the API with nothing but the clusterdns ServiceAccount's token
		// (a kubeconfig stands in for the in-cluster one).
		bin := filepath.Join(binaries(t), "clusterdns")
		ctx := apiContext(t) // after the build, which can take minutes on a loaded machine
		tok, err := client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, "clusterdns",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token of the clusterdns ServiceAccount: %v", err)
		}
		kc := saKubeconfig(t, api, tok.Status.Token)
		p := startClusterDNS(t, bin, filepath.Join(root, "deploy", "base", "clusterdns.yaml"),
			"--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--kubeconfig", kc, "--upstreams=")
		p.get(t, "/ready", 200) // synced: every list and watch was allowed
		name := "kube-dns.kube-system.svc.cluster.local."
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := queryA(p.dns, name)
			if err == nil && got == dnsIP {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s A: %q %v, want %s\n%s", name, got, err, dnsIP, p.log())
			}
			time.Sleep(100 * time.Millisecond)
		}
		if strings.Contains(p.log(), "forbidden") {
			t.Errorf("clusterdns logged a forbidden request:\n%s", p.log())
		}
		p.stop()

		// With verified pod records it watches pods too.
		p = startClusterDNS(t, bin, filepath.Join(root, "deploy", "base", "clusterdns.yaml"),
			"--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--kubeconfig", kc, "--upstreams=", "--pods", "verified")
		p.get(t, "/ready", 200)
		if strings.Contains(p.log(), "forbidden") {
			t.Errorf("clusterdns (pods: verified) logged a forbidden request:\n%s", p.log())
		}
	})
}

// applier applies objects with server-side apply through the dynamic
// client, resolving kinds with the apiserver's discovery.
type applier struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

func newApplier(t *testing.T, api *testenv.APIServer) *applier {
	t.Helper()
	cfg := api.RESTConfig()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &applier{dyn: dyn, mapper: restmapper.NewDiscoveryRESTMapper(groups)}
}

// apiContext bounds the API calls of one step of a test: each step gets its
// own 45 s, so time spent elsewhere (building the binaries on a loaded
// machine took two minutes once) never eats a later step's budget.
func apiContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (a *applier) apply(ctx context.Context, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	gvk := u.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("no resource for %s: %w", gvk, err)
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = a.dyn.Resource(m.Resource).Namespace(u.GetNamespace())
	}
	data, err := json.Marshal(u.Object)
	if err != nil {
		return nil, err
	}
	return ri.Patch(ctx, u.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
		FieldManager:    fieldManager,
		Force:           ptr(true),
		FieldValidation: "Strict", // an unknown or duplicate field is an error
	})
}

// allowed asks a SubjectAccessReview whether user (a ServiceAccount, with
// the groups its token carries) may do verb on group/resource in ns ("" for
// every namespace).
func allowed(ctx context.Context, t *testing.T, c kubernetes.Interface, user, verb, group, resource, ns string) (bool, string) {
	t.Helper()
	parts := strings.Split(user, ":")
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + parts[2], "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ns, Verb: verb, Group: group, Resource: resource,
		},
	}}
	got, err := c.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SubjectAccessReview %s %s %s: %v", user, verb, resource, err)
	}
	why := got.Status.Reason
	if got.Status.EvaluationError != "" {
		why += " (evaluation error: " + got.Status.EvaluationError + ")"
	}
	return got.Status.Allowed, why
}

func waitAllowed(ctx context.Context, t *testing.T, c kubernetes.Interface, user, verb, group, resource string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, why := allowed(ctx, t, c, user, verb, group, resource, "")
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s %s still denied after 10 s: %s", user, verb, resource, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// saKubeconfig writes a kubeconfig for the apiserver with a bearer token.
func saKubeconfig(t *testing.T, api *testenv.APIServer, token string) string {
	t.Helper()
	ca, err := os.ReadFile(api.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: api.Host, CertificateAuthorityData: ca}
	cfg.AuthInfos["clusterdns"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "clusterdns"}
	cfg.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// queryA asks server for name's A record over UDP and returns the address.
func queryA(server, name string) (string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		return "", err
	}
	if r.Rcode != dns.RcodeSuccess {
		return "", fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String(), nil
		}
	}
	return "", fmt.Errorf("no A record in %v", r.Answer)
}

func ptr[T any](v T) *T { return &v }
