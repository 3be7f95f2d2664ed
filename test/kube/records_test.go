package kube

import (
	"net/http"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/clusterdns/clusterdns/internal/testenv"
)

// TestRecords creates, updates and deletes every kind of service and its
// EndpointSlices through the API server and checks with dig that clusterdns
// follows. One API server (dual-stack service range) and one clusterdns
// (pods verified) serve every case; each case has its own namespace.
func TestRecords(t *testing.T) {
	t.Parallel()
	api := startAPI(t, dualStackArgs...)
	k := &cluster{t: t, c: api.Client()}
	s := startServer(t, kubeArgs(api, "--pods", "verified")...)
	s.waitReady(t, 60*time.Second)

	t.Run("group", func(t *testing.T) {
		for _, c := range []struct {
			name string
			run  func(*testing.T, *cluster, *server, string)
		}{
			{"ClusterIP", testClusterIP},
			{"Headless", testHeadless},
			{"ExternalName", testExternalName},
			{"DualStack", testDualStack},
			{"Namespaces", testNamespaceNames},
			{"VerifiedPods", testVerifiedPods},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				ns := "t-" + dns.CanonicalName(c.name)
				ns = ns[:len(ns)-1] // lower case, no dot
				k := &cluster{t: t, c: k.c}
				k.namespace(ns)
				c.run(t, k, s, ns)
			})
		}
		t.Run("KubernetesService", func(t *testing.T) {
			t.Parallel()
			// The apiserver's bootstrap controller creates it right after
			// /readyz with the first address of the range.
			s.waitData(t, "kubernetes.default.svc.cluster.local", "A", testenv.KubernetesServiceIP)
			s.waitData(t, "_https._tcp.kubernetes.default.svc.cluster.local", "SRV", "0 100 443 kubernetes.default.svc.cluster.local.")
			s.waitData(t, "1.0.96.10.in-addr.arpa", "PTR", "kubernetes.default.svc.cluster.local.")
		})
	})
}

func testClusterIP(t *testing.T, k *cluster, s *server, ns string) {
	name := "web." + ns + ".svc.cluster.local"
	svc := k.createService(clusterIPService(ns, "web", tcpPort("http", 80)))
	ip := svc.Spec.ClusterIP
	s.waitData(t, name, "A", ip)
	s.waitData(t, "_http._tcp."+name, "SRV", "0 100 80 "+name+".")
	rev, _ := dns.ReverseAddr(ip)
	s.waitData(t, rev, "PTR", name+".")
	// NODATA, not NXDOMAIN, for a type the name does not have.
	if a := s.dig(t, name, "AAAA"); a.status != "NOERROR" || len(a.answer) != 0 || len(a.authority) != 1 {
		t.Errorf("AAAA of an IPv4 service: want NODATA with the SOA, got\n%s", a.raw)
	}

	// Update: a second named port, then the first one renamed.
	k.updateService(ns, "web", func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, tcpPort("metrics", 9090))
	})
	s.waitData(t, "_metrics._tcp."+name, "SRV", "0 100 9090 "+name+".")
	k.updateService(ns, "web", func(s *corev1.Service) { s.Spec.Ports[0].Name = "www" })
	s.waitData(t, "_www._tcp."+name, "SRV", "0 100 80 "+name+".")
	s.waitStatus(t, "_http._tcp."+name, "SRV", "NXDOMAIN")

	k.deleteService(ns, "web")
	s.waitStatus(t, name, "A", "NXDOMAIN")
	s.waitNoRecord(t, rev, "PTR")
}

func testHeadless(t *testing.T, k *cluster, s *server, ns string) {
	name := "db." + ns + ".svc.cluster.local"
	k.createService(headlessService(ns, "db", tcpPort("cql", 9042)))
	// No endpoint yet: the spec says the name does not exist.
	s.waitStatus(t, name, "A", "NXDOMAIN")

	ports := []discoveryv1.EndpointPort{slicePort("cql", 9042)}
	k.createSlice(slice(ns, "db-a", "db", discoveryv1.AddressTypeIPv4, ports,
		endpoint("10.244.7.10", "db-0", true),
		endpoint("10.244.7.11", "db-1", true),
		endpoint("10.244.7.12", "", true),
		endpoint("10.244.7.13", "db-3", false),
	))
	s.waitData(t, name, "A", "10.244.7.10", "10.244.7.11", "10.244.7.12")
	s.waitData(t, "db-0."+name, "A", "10.244.7.10")
	s.waitData(t, "10-244-7-12."+name, "A", "10.244.7.12") // no hostname: the dashed address
	s.waitData(t, "_cql._tcp."+name, "SRV",
		"0 100 9042 db-0."+name+".", "0 100 9042 db-1."+name+".", "0 100 9042 10-244-7-12."+name+".")
	s.waitData(t, "11.7.244.10.in-addr.arpa", "PTR", "db-1."+name+".")
	s.waitStatus(t, "db-3."+name, "A", "NXDOMAIN")

	// A second slice of the same service (the controller splits big ones).
	k.createSlice(slice(ns, "db-b", "db", discoveryv1.AddressTypeIPv4, ports, endpoint("10.244.8.20", "db-4", true)))
	s.waitData(t, name, "A", "10.244.7.10", "10.244.7.11", "10.244.7.12", "10.244.8.20")

	// db-1 turns not ready: it disappears from every answer.
	k.updateSlice(ns, "db-a", func(sl *discoveryv1.EndpointSlice) {
		sl.Endpoints[1].Conditions.Ready = ptr.To(false)
	})
	s.waitData(t, name, "A", "10.244.7.10", "10.244.7.12", "10.244.8.20")
	s.waitStatus(t, "db-1."+name, "A", "NXDOMAIN")
	s.waitNoRecord(t, "11.7.244.10.in-addr.arpa", "PTR")

	// publishNotReadyAddresses: the not-ready ones come back.
	k.updateService(ns, "db", func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true })
	s.waitData(t, name, "A", "10.244.7.10", "10.244.7.11", "10.244.7.12", "10.244.7.13", "10.244.8.20")
	k.updateService(ns, "db", func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = false })

	// A slice that loses its service-name label leaves the service.
	k.updateSlice(ns, "db-b", func(sl *discoveryv1.EndpointSlice) { delete(sl.Labels, discoveryv1.LabelServiceName) })
	s.waitData(t, name, "A", "10.244.7.10", "10.244.7.12")

	// Slices deleted: no ready endpoint left, NXDOMAIN again.
	k.deleteSlice(ns, "db-a")
	s.waitStatus(t, name, "A", "NXDOMAIN")
	k.deleteService(ns, "db")
	s.waitStatus(t, "_cql._tcp."+name, "SRV", "NXDOMAIN")
}

func testExternalName(t *testing.T, k *cluster, s *server, ns string) {
	name := "search." + ns + ".svc.cluster.local"
	k.createService(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "search"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "www.example.test"},
	})
	s.waitData(t, name, "CNAME", "www.example.test.")
	// Any type: the CNAME (its target is outside the served zones).
	s.waitDig(t, propagate, name, "A", "a CNAME to www.example.test", func(a *answer) bool {
		return len(a.answer) == 1 && a.answer[0].Header().Rrtype == dns.TypeCNAME && a.answer[0].(*dns.CNAME).Target == "www.example.test."
	})
	k.updateService(ns, "search", func(s *corev1.Service) { s.Spec.ExternalName = "other.example.test" })
	s.waitData(t, name, "CNAME", "other.example.test.")
	// Turned into a ClusterIP service: the CNAME gives way to an address.
	svc := k.updateService(ns, "search", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeClusterIP
		s.Spec.ExternalName = ""
		s.Spec.Ports = []corev1.ServicePort{tcpPort("http", 80)}
	})
	s.waitData(t, name, "A", svc.Spec.ClusterIP)
	s.waitStatus(t, name, "CNAME", "NOERROR")
	k.deleteService(ns, "search")
	s.waitStatus(t, name, "CNAME", "NXDOMAIN")
}

func testDualStack(t *testing.T, k *cluster, s *server, ns string) {
	name := "dual." + ns + ".svc.cluster.local"
	svc := clusterIPService(ns, "dual", tcpPort("http", 80))
	svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
	svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	got := k.createService(svc)
	if len(got.Spec.ClusterIPs) != 2 {
		t.Fatalf("dual-stack service got ClusterIPs %v", got.Spec.ClusterIPs)
	}
	s.waitData(t, name, "A", got.Spec.ClusterIPs[0])
	s.waitData(t, name, "AAAA", got.Spec.ClusterIPs[1])
	rev6, _ := dns.ReverseAddr(got.Spec.ClusterIPs[1])
	s.waitData(t, rev6, "PTR", name+".")

	// A dual-stack headless service: one slice per family.
	hname := "peers." + ns + ".svc.cluster.local"
	h := headlessService(ns, "peers", tcpPort("http", 80))
	h.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
	h.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	k.createService(h)
	ports := []discoveryv1.EndpointPort{slicePort("http", 8080)}
	k.createSlice(slice(ns, "peers-v4", "peers", discoveryv1.AddressTypeIPv4, ports, endpoint("10.244.9.1", "peer-0", true)))
	k.createSlice(slice(ns, "peers-v6", "peers", discoveryv1.AddressTypeIPv6, ports, endpoint("fd00:10:244:9::1", "peer-0", true)))
	s.waitData(t, hname, "A", "10.244.9.1")
	s.waitData(t, hname, "AAAA", "fd00:10:244:9::1")
	s.waitData(t, "peer-0."+hname, "AAAA", "fd00:10:244:9::1")

	// Down to single stack: the AAAA goes (NODATA).
	k.deleteSlice(ns, "peers-v6")
	s.waitStatus(t, hname, "AAAA", "NOERROR")
	k.deleteService(ns, "dual")
	s.waitStatus(t, name, "AAAA", "NXDOMAIN")
}

// testNamespaceNames checks <ns>.svc names: NODATA for a namespace that
// exists (even empty), NXDOMAIN for one that does not, and the change when
// a namespace is created.
func testNamespaceNames(t *testing.T, k *cluster, s *server, ns string) {
	s.waitStatus(t, ns+".svc.cluster.local", "A", "NOERROR")
	s.waitStatus(t, "svc.cluster.local", "A", "NOERROR")
	other := ns + "-later"
	s.waitStatus(t, other+".svc.cluster.local", "A", "NXDOMAIN")
	k.namespace(other)
	s.waitStatus(t, other+".svc.cluster.local", "A", "NOERROR")
	// A name under a namespace that exists but no such service.
	s.waitStatus(t, "nothere."+ns+".svc.cluster.local", "A", "NXDOMAIN")
}

// testVerifiedPods checks pod records under `pods: verified`: answered
// only while a pod with that IP exists in that namespace and is not
// finished.
func testVerifiedPods(t *testing.T, k *cluster, s *server, ns string) {
	name := "10-244-5-5." + ns + ".pod.cluster.local"
	s.waitStatus(t, name, "A", "NXDOMAIN")
	k.createPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"}}, "10.244.5.5")
	s.waitData(t, name, "A", "10.244.5.5")
	// The same IP in another namespace is not verified.
	s.waitStatus(t, "10-244-5-5.default.pod.cluster.local", "A", "NXDOMAIN")

	// A finished pod leaves the watch (its IP may be reused).
	ctx := ctx30(t)
	p, err := k.c.CoreV1().Pods(ns).Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodSucceeded
	if _, err := k.c.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.waitStatus(t, name, "A", "NXDOMAIN")

	k.createPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "q"}}, "10.244.5.6")
	s.waitData(t, "10-244-5-6."+ns+".pod.cluster.local", "A", "10.244.5.6")
	if err := k.c.CoreV1().Pods(ns).Delete(ctx, "q", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	s.waitStatus(t, "10-244-5-6."+ns+".pod.cluster.local", "A", "NXDOMAIN")
}

// TestNamespacesFlag runs clusterdns with --namespaces: only those are
// served; the others are NXDOMAIN even though they exist.
func TestNamespacesFlag(t *testing.T) {
	t.Parallel()
	api := startAPI(t)
	k := &cluster{t: t, c: api.Client()}
	for _, ns := range []string{"alpha", "beta", "gamma"} {
		k.namespace(ns)
		k.createService(clusterIPService(ns, "web", tcpPort("http", 80)))
	}
	s := startServer(t, kubeArgs(api, "--namespaces", "alpha,gamma")...)
	s.waitReady(t, 60*time.Second)
	for _, ns := range []string{"alpha", "gamma"} {
		s.waitDig(t, propagate, "web."+ns+".svc.cluster.local", "A", "one address", func(a *answer) bool {
			return a.status == "NOERROR" && len(a.answer) == 1
		})
		s.waitStatus(t, ns+".svc.cluster.local", "A", "NOERROR")
	}
	s.waitStatus(t, "web.beta.svc.cluster.local", "A", "NXDOMAIN")
	s.waitStatus(t, "beta.svc.cluster.local", "A", "NXDOMAIN")
	s.waitStatus(t, "kubernetes.default.svc.cluster.local", "A", "NXDOMAIN")
	// A change in a served namespace arrives; one in another does not.
	k.createService(clusterIPService("beta", "late", tcpPort("http", 80)))
	k.createService(clusterIPService("alpha", "late", tcpPort("http", 80)))
	s.waitDig(t, propagate, "late.alpha.svc.cluster.local", "A", "one address", func(a *answer) bool {
		return a.status == "NOERROR" && len(a.answer) == 1
	})
	s.waitStatus(t, "late.beta.svc.cluster.local", "A", "NXDOMAIN")
	if code := s.ready(); code != http.StatusOK {
		t.Errorf("/ready = %d", code)
	}
}
