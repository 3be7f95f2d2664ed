package nodeproxy

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/knftables"

	"github.com/clusterdns/clusterdns/internal/testenv"
	"github.com/clusterdns/clusterdns/registry"
)

// TestKubernetesSourceDrivesRules feeds the Store from a real API server
// (the informer source) and checks that service and EndpointSlice changes
// reach the kernel's rules, in a fresh network namespace.
func TestKubernetesSourceDrivesRules(t *testing.T) {
	requireNetAdmin(t)
	api := testenv.StartAPIServer(t)
	client := api.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			ClusterIP: "10.96.5.100",
			Ports:     []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready := true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Protocol: new(corev1.ProtocolTCP), Port: new(int32(8080))}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.7.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			{Addresses: []string{"10.244.7.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
		},
	}
	if _, err := client.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	tracker := trackAPI(ctx, t, api, registry.KubeOptions{})

	// The rules side runs on a thread in a fresh namespace; the API calls
	// stay on this goroutine, in the host's namespace, where the API is.
	steps := make(chan func(string) bool)
	results := make(chan string)
	go inFreshNetns(t, func() {
		defer close(results)
		nft, err := knftables.New(knftables.InetFamily, DefaultTable)
		if err != nil {
			t.Errorf("knftables: %v", err)
			return
		}
		p := NewProxier(ProxierConfig{NFT: nft})
		for ok := range steps {
			var rules string
			deadline := time.After(20 * time.Second)
			for !ok(rules) {
				select {
				case <-tracker.Wake():
				case <-time.After(100 * time.Millisecond):
				case <-deadline:
					results <- "timeout:\n" + rules
					return
				}
				if snap, changed, full := tracker.Take(); snap != nil && (full || len(changed) > 0) {
					if _, err := p.Sync(ctx, snap, changed, full); err != nil {
						results <- "sync: " + err.Error()
						return
					}
				}
				out, _ := exec.Command("nft", "list", "table", "inet", DefaultTable).CombinedOutput()
				rules = string(out)
			}
			results <- ""
		}
	})
	wait := func(what string, ok func(string) bool) {
		t.Helper()
		steps <- ok
		if r := <-results; r != "" {
			t.Fatalf("%s: %s", what, r)
		}
	}
	wait("service with two endpoints", func(r string) bool {
		return strings.Contains(r, "10.96.5.100 . tcp . 80") && strings.Contains(r, "goto cluster-v4-tcp-n2") &&
			strings.Contains(r, "10.96.5.100 . 80 . 1 : 10.244.7.")
	})

	// A LoadBalancer: its status (written through the status subresource,
	// as a cloud controller does) and its externalIPs reach the rules.
	cur, err := client.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Type = corev1.ServiceTypeLoadBalancer
	cur.Spec.ExternalIPs = []string{"198.18.5.50"}
	cur.Spec.AllocateLoadBalancerNodePorts = new(false)
	if cur, err = client.CoreV1().Services("default").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cur.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.18.5.10"}, {IP: "198.18.5.11", IPMode: new(corev1.LoadBalancerIPModeProxy)}}
	if _, err = client.CoreV1().Services("default").UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("LoadBalancer ingress and externalIP", func(r string) bool {
		return strings.Contains(r, "198.18.5.10 . tcp . 80") && strings.Contains(r, "198.18.5.50 . tcp . 80") &&
			strings.Contains(r, "198.18.5.10 . 80 . 1 : 10.244.7.") && !strings.Contains(r, "198.18.5.11")
	})

	slice.Endpoints[1].Conditions.Ready = new(false)
	if _, err := client.DiscoveryV1().EndpointSlices("default").Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("endpoint not ready", func(r string) bool {
		return strings.Contains(r, `comment "default/web/tcp/80" : goto cluster-v4-tcp-n1`) && !strings.Contains(r, "10.244.7.2 . 8080")
	})

	if err := client.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("service deleted", func(r string) bool {
		return strings.Contains(r, "table inet "+DefaultTable) && !strings.Contains(r, "10.96.5.100")
	})
	close(steps)
	<-results
}

// trackAPI feeds a Tracker from a Kubernetes source on api (with opts)
// until ctx ends.
func trackAPI(ctx context.Context, t *testing.T, api *testenv.APIServer, opts registry.KubeOptions) *Tracker {
	t.Helper()
	store := registry.NewStore(registry.Options{})
	tracker := NewTracker(nil)
	store.Subscribe(tracker.OnSnapshot)
	kapi, err := registry.NewKubeAPI(api.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	go registry.NewKubeSource(kapi, store, opts).Run(ctx)
	return tracker
}
