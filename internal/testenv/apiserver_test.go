package testenv

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestAPIServer(t *testing.T) {
	start := time.Now()
	api := StartAPIServer(t)
	t.Logf("etcd + kube-apiserver ready in %v at %s (binaries: %s)", time.Since(start).Round(time.Millisecond), api.Host, api.BinDir)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := api.Client()

	// A namespace and a Service in it.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "testenv"}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "dns", Namespace: "testenv"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "dns"},
			Ports: []corev1.ServicePort{
				{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(5353)},
				{Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53, TargetPort: intstr.FromInt32(5353)},
			},
		},
	}
	got, err := client.CoreV1().Services("testenv").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service: %v", err)
	}
	_, cidr, _ := net.ParseCIDR(ServiceCIDR)
	if ip := net.ParseIP(got.Spec.ClusterIP); ip == nil || !cidr.Contains(ip) {
		t.Errorf("service ClusterIP = %q, want an address in %s", got.Spec.ClusterIP, ServiceCIDR)
	}

	// Pods can be created without a controller-manager (no ServiceAccount
	// admission).
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "dns-0", Namespace: "testenv", Labels: map[string]string{"app": "dns"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/none"}}},
	}
	if _, err := client.CoreV1().Pods("testenv").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Errorf("create pod: %v", err)
	}

	// The apiserver's bootstrap controller creates default/kubernetes with
	// the first service IP right after /readyz, even with
	// --endpoint-reconciler-type=none; it just gets no endpoints.
	var kube *corev1.Service
	for deadline := time.Now().Add(10 * time.Second); ; {
		kube, err = client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err == nil || !apierrors.IsNotFound(err) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("get default/kubernetes service: %v", err)
	}
	if kube.Spec.ClusterIP != KubernetesServiceIP {
		t.Errorf("default/kubernetes ClusterIP = %q, want %q", kube.Spec.ClusterIP, KubernetesServiceIP)
	}
	t.Logf("default/kubernetes exists: ClusterIP %s, ports %v", kube.Spec.ClusterIP, kube.Spec.Ports)

	// The kubeconfig file works as --kubeconfig would use it.
	cfg, err := clientcmd.BuildConfigFromFlags("", api.Kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", api.Kubeconfig, err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CoreV1().Services("testenv").Get(ctx, "dns", metav1.GetOptions{}); err != nil {
		t.Errorf("get service through kubeconfig: %v", err)
	}

	// An outage: the apiserver goes away and comes back on the same port,
	// with the same data.
	api.StopAPIServer()
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	_, err = client.CoreV1().Namespaces().Get(short, "testenv", metav1.GetOptions{})
	cancelShort()
	if err == nil {
		t.Errorf("get namespace while the apiserver is stopped: no error")
	}
	restart := time.Now()
	api.StartAPIServer()
	t.Logf("kube-apiserver restarted in %v", time.Since(restart).Round(time.Millisecond))
	if _, err := client.CoreV1().Services("testenv").Get(ctx, "dns", metav1.GetOptions{}); err != nil {
		t.Errorf("get service after restart: %v", err)
	}
}

func TestBinDirFollowsEnv(t *testing.T) {
	t.Setenv(EnvBinDir, "/nonexistent/bin")
	d, err := BinDir()
	if err != nil || d != "/nonexistent/bin" {
		t.Fatalf("BinDir() = %q, %v; want /nonexistent/bin", d, err)
	}
	if _, err := Binary("kube-apiserver"); err == nil {
		t.Fatalf("Binary found a file in /nonexistent/bin")
	}
}

// BinDir and build.sh agree on the cache folder: with fake binaries in place
// build.sh returns at once and prints the folder BinDir computes.
func TestBinDirMatchesBuildScript(t *testing.T) {
	root := t.TempDir()
	t.Setenv(EnvBinDir, "")
	t.Setenv(EnvCacheRoot, root)
	dir, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dir, filepath.Join(root, "apiserver")+"/") {
		t.Fatalf("BinDir() = %q, want a folder under %s/apiserver", dir, root)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if err := os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script, err := findUp(buildScript)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", script).Output()
	if err != nil {
		t.Fatalf("bash %s: %v", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if last := lines[len(lines)-1]; last != dir {
		t.Fatalf("build.sh printed %q, BinDir() = %q", last, dir)
	}
}
