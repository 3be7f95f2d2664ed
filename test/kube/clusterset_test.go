package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

var (
	crdGVR    = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	importGVR = schema.GroupVersionResource{Group: "multicluster.x-k8s.io", Version: "v1alpha1", Resource: "serviceimports"}
)

const crdMissingLog = "ServiceImport CRD (serviceimports.multicluster.x-k8s.io) not installed"

// TestClusterSet starts clusterdns against an API server without the
// ServiceImport CRD (logged once, cluster.local served), installs the CRD
// kept in testdata, creates a ClusterSetIP import and a headless one with
// MCS-labelled EndpointSlices from two clusters, and checks the
// clusterset.local answers with dig.
func TestClusterSet(t *testing.T) {
	t.Parallel()
	api := startAPI(t)
	k := &cluster{t: t, c: api.Client()}
	dyn, err := dynamic.NewForConfig(api.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, kubeArgs(api)...)
	s.waitReady(t, 60*time.Second)
	s.waitLog(t, crdMissingLog, 30*time.Second)
	s.waitData(t, "kubernetes.default.svc.cluster.local", "A", "10.96.0.1")

	// Install the CRD and wait until it is served.
	data, err := os.ReadFile(filepath.Join("testdata", "serviceimports.multicluster.x-k8s.io.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd unstructured.Unstructured
	if err := yaml.Unmarshal(data, &crd.Object); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(crdGVR).Create(ctx30(t), &crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("install the CRD: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := dyn.Resource(importGVR).Namespace("default").List(ctx30(t), metav1.ListOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRD not served: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The source retries the missing resource with client-go's backoff
	// (up to 30 s between tries): wait for it to find the CRD.
	s.waitLog(t, "ServiceImports readable: watching them", 90*time.Second)

	ns := "mcs"
	k.namespace(ns)
	create := func(obj map[string]any) {
		t.Helper()
		u := &unstructured.Unstructured{Object: obj}
		if _, err := dyn.Resource(importGVR).Namespace(ns).Create(ctx30(t), u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create ServiceImport: %v", err)
		}
	}
	create(map[string]any{
		"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
		"metadata": map[string]any{"name": "checkout", "namespace": ns},
		"spec": map[string]any{"type": "ClusterSetIP", "ips": []any{"10.112.0.10"},
			"ports": []any{map[string]any{"name": "http", "protocol": "TCP", "port": int64(80)}}},
	})
	create(map[string]any{
		"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
		"metadata": map[string]any{"name": "ledger", "namespace": ns},
		"spec": map[string]any{"type": "Headless",
			"ports": []any{map[string]any{"name": "pg", "protocol": "TCP", "port": int64(5432)}}},
	})
	for _, c := range []struct{ cluster, ip string }{{"east", "10.245.1.10"}, {"west", "10.246.1.10"}} {
		sl := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "imported-ledger-" + c.cluster, Namespace: ns, Labels: map[string]string{
				"multicluster.kubernetes.io/service-name":   "ledger",
				"multicluster.kubernetes.io/source-cluster": c.cluster,
			}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("pg"), Port: ptr.To[int32](5432)}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{c.ip}, Hostname: ptr.To("ledger-0"),
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		}
		if _, err := k.c.DiscoveryV1().EndpointSlices(ns).Create(ctx30(t), sl, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s.waitData(t, "checkout.mcs.svc.clusterset.local", "A", "10.112.0.10")
	s.waitData(t, "_http._tcp.checkout.mcs.svc.clusterset.local", "SRV", "0 100 80 checkout.mcs.svc.clusterset.local.")
	s.waitData(t, "ledger.mcs.svc.clusterset.local", "A", "10.245.1.10", "10.246.1.10")
	s.waitData(t, "ledger-0.west.ledger.mcs.svc.clusterset.local", "A", "10.246.1.10")
	s.waitData(t, "_pg._tcp.ledger.mcs.svc.clusterset.local", "SRV",
		"0 100 5432 ledger-0.east.ledger.mcs.svc.clusterset.local.", "0 100 5432 ledger-0.west.ledger.mcs.svc.clusterset.local.")
	// The MCS slices stay out of cluster.local.
	s.waitStatus(t, "ledger.mcs.svc.cluster.local", "A", "NXDOMAIN")

	// An import goes: its names go.
	if err := dyn.Resource(importGVR).Namespace(ns).Delete(ctx30(t), "checkout", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	s.waitStatus(t, "checkout.mcs.svc.clusterset.local", "A", "NXDOMAIN")

	if n := strings.Count(s.Out.String(), crdMissingLog); n != 1 {
		t.Errorf("the missing CRD was logged %d times, want once", n)
	}
}
