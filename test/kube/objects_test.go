package kube

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// cluster wraps a clientset with helpers that fail the test on error.
type cluster struct {
	t testing.TB
	c kubernetes.Interface
}

func ctx30(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (k *cluster) namespace(name string) {
	k.t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := k.c.CoreV1().Namespaces().Create(ctx30(k.t), ns, metav1.CreateOptions{}); err != nil {
		k.t.Fatalf("create namespace %s: %v", name, err)
	}
}

func (k *cluster) createService(s *corev1.Service) *corev1.Service {
	k.t.Helper()
	got, err := k.c.CoreV1().Services(s.Namespace).Create(ctx30(k.t), s, metav1.CreateOptions{})
	if err != nil {
		k.t.Fatalf("create service %s/%s: %v", s.Namespace, s.Name, err)
	}
	return got
}

// updateService gets the service, applies change and writes it back.
func (k *cluster) updateService(ns, name string, change func(*corev1.Service)) *corev1.Service {
	k.t.Helper()
	ctx := ctx30(k.t)
	s, err := k.c.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		k.t.Fatalf("get service %s/%s: %v", ns, name, err)
	}
	change(s)
	got, err := k.c.CoreV1().Services(ns).Update(ctx, s, metav1.UpdateOptions{})
	if err != nil {
		k.t.Fatalf("update service %s/%s: %v", ns, name, err)
	}
	return got
}

func (k *cluster) deleteService(ns, name string) {
	k.t.Helper()
	if err := k.c.CoreV1().Services(ns).Delete(ctx30(k.t), name, metav1.DeleteOptions{}); err != nil {
		k.t.Fatalf("delete service %s/%s: %v", ns, name, err)
	}
}

func (k *cluster) createSlice(s *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	k.t.Helper()
	got, err := k.c.DiscoveryV1().EndpointSlices(s.Namespace).Create(ctx30(k.t), s, metav1.CreateOptions{})
	if err != nil {
		k.t.Fatalf("create endpointslice %s/%s: %v", s.Namespace, s.Name, err)
	}
	return got
}

func (k *cluster) updateSlice(ns, name string, change func(*discoveryv1.EndpointSlice)) {
	k.t.Helper()
	ctx := ctx30(k.t)
	s, err := k.c.DiscoveryV1().EndpointSlices(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		k.t.Fatalf("get endpointslice %s/%s: %v", ns, name, err)
	}
	change(s)
	if _, err := k.c.DiscoveryV1().EndpointSlices(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		k.t.Fatalf("update endpointslice %s/%s: %v", ns, name, err)
	}
}

func (k *cluster) deleteSlice(ns, name string) {
	k.t.Helper()
	if err := k.c.DiscoveryV1().EndpointSlices(ns).Delete(ctx30(k.t), name, metav1.DeleteOptions{}); err != nil {
		k.t.Fatalf("delete endpointslice %s/%s: %v", ns, name, err)
	}
}

// createPod creates a pod and gives it IPs through the status subresource
// (nothing schedules or runs it: there is no kubelet).
func (k *cluster) createPod(p *corev1.Pod, ips ...string) *corev1.Pod {
	k.t.Helper()
	ctx := ctx30(k.t)
	if len(p.Spec.Containers) == 0 {
		p.Spec.Containers = []corev1.Container{{Name: "c", Image: "example.invalid/none"}}
	}
	got, err := k.c.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		k.t.Fatalf("create pod %s/%s: %v", p.Namespace, p.Name, err)
	}
	if len(ips) == 0 {
		return got
	}
	got.Status.PodIP = ips[0]
	got.Status.PodIPs = nil
	for _, ip := range ips {
		got.Status.PodIPs = append(got.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	if got, err = k.c.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
		k.t.Fatalf("pod %s/%s status: %v", p.Namespace, p.Name, err)
	}
	return got
}

// ---- object builders ------------------------------------------------------

func tcpPort(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: port, TargetPort: intstr.FromInt32(port)}
}

func clusterIPService(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: ports},
	}
}

func headlessService(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	s := clusterIPService(ns, name, ports...)
	s.Spec.ClusterIP = corev1.ClusterIPNone
	return s
}

// endpoint is a slice endpoint; hostname may be empty.
func endpoint(ip, hostname string, ready bool) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{
		Addresses:  []string{ip},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(ready), Terminating: ptr.To(false)},
	}
	if hostname != "" {
		e.Hostname = ptr.To(hostname)
	}
	return e
}

func slice(ns, name, service string, family discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: service},
		},
		AddressType: family,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func slicePort(name string, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(port)}
}
