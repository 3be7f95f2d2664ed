package nodeproxy

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/knftables"
	"sigs.k8s.io/yaml"

	"github.com/clusterdns/clusterdns/internal/testenv"
	"github.com/clusterdns/clusterdns/registry"
)

// TestKubernetesClusterSetIP feeds the Store from a real API server with
// the ServiceImport CRD installed (the YAML kept in test/kube/testdata) and
// checks that a ClusterSetIP import and its MCS EndpointSlice reach the
// rules (knftables' fake: the rules themselves are driven with traffic by
// TestE2EClusterSetIP).
func TestKubernetesClusterSetIP(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dyn, err := dynamic.NewForConfig(api.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../test/kube/testdata/serviceimports.multicluster.x-k8s.io.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd unstructured.Unstructured
	if err := yaml.Unmarshal(data, &crd.Object); err != nil {
		t.Fatal(err)
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := dyn.Resource(crdGVR).Create(ctx, &crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("install the CRD: %v", err)
	}
	importGVR := schema.GroupVersionResource{Group: "multicluster.x-k8s.io", Version: "v1alpha1", Resource: "serviceimports"}
	imp := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
		"metadata": map[string]any{"name": "pay", "namespace": "default"},
		"spec": map[string]any{"type": "ClusterSetIP", "ips": []any{"10.112.5.20"},
			"ports": []any{map[string]any{"name": "http", "protocol": "TCP", "port": int64(80)}}},
	}}
	for {
		_, err := dyn.Resource(importGVR).Namespace("default").Create(ctx, imp, metav1.CreateOptions{})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("create the ServiceImport: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // until the new CRD is served
	}
	ready := true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "imported-pay-east", Namespace: "default", Labels: map[string]string{
			registry.MCSServiceNameLabel: "pay", registry.MCSSourceClusterLabel: "east"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Protocol: new(corev1.ProtocolTCP), Port: new(int32(8080))}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.245.5.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
	if _, err := api.Client().DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	tracker := trackAPI(ctx, t, api, registry.KubeOptions{ClusterSet: true})
	fake := knftables.NewFake(knftables.InetFamily, DefaultTable)
	p := NewProxier(ProxierConfig{NFT: fake})
	const want = "10.112.5.20 . 80 . 0 : 10.245.5.1 . 8080"
	for {
		select {
		case <-tracker.Wake():
		case <-ctx.Done():
			t.Fatalf("the import never reached the rules:\n%s", fake.Dump())
		}
		if snap, changed, full := tracker.Take(); snap != nil && (full || len(changed) > 0) {
			if _, err := p.Sync(ctx, snap, changed, full); err != nil {
				t.Fatal(err)
			}
		}
		if d := fake.Dump(); strings.Contains(d, want) && strings.Contains(d, `comment "default/clusterset:pay/tcp/80"`) {
			return
		}
	}
}
