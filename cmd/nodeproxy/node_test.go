package main

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/clusterdns/clusterdns/internal/testenv"
)

// TestFetchNode reads a Node from a real API server: its zone label and
// InternalIPs (not its other addresses), its eligibility; a missing Node
// is an error.
func TestFetchNode(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{corev1.LabelTopologyZone: "zone-a"}}}
	node, err := api.Client().CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "192.0.2.10"},
		{Type: corev1.NodeExternalIP, Address: "198.51.100.10"},
		{Type: corev1.NodeInternalIP, Address: "fd00::10"},
	}
	if _, err := api.Client().CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := fetchNode(ctx, api.RESTConfig(), "node-a")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("fd00::10")}
	if info.Zone != "zone-a" || !slices.Equal(info.IPs, want) || !info.Eligible {
		t.Errorf("fetchNode: %+v; want zone-a, %v, eligible", info, want)
	}
	// The cluster autoscaler's taint makes the node ineligible.
	node, err = api.Client().CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Spec.Taints = []corev1.Taint{{Key: toBeDeletedTaint, Effect: corev1.TaintEffectNoSchedule}}
	if _, err := api.Client().CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if info, err = fetchNode(ctx, api.RESTConfig(), "node-a"); err != nil || info.Eligible {
		t.Errorf("fetchNode of a tainted node: %+v %v, want ineligible", info, err)
	}
	if _, err := fetchNode(ctx, api.RESTConfig(), "node-b"); err == nil {
		t.Error("fetchNode of a missing Node: no error")
	}
}
