package helm

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/clusterdns/clusterdns/internal/testbin"
	"github.com/clusterdns/clusterdns/internal/testenv"
)

// TestAppliesToAPIServer applies what the chart renders — with the defaults
// and with every option (the ServiceMonitor aside: this apiserver has no
// prometheus-operator CRDs) — to a real kube-apiserver with server-side
// apply and strict field validation, then runs clusterdns with the
// rendered config file against that apiserver and asks it a name.
func TestAppliesToAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver")
	}
	t.Parallel()
	api := testenv.StartAPIServer(t)
	cfg := api.RESTConfig()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	apply := func(u *unstructured.Unstructured) error {
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("no resource for %s: %w", gvk, err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		}
		data, err := json.Marshal(u.Object)
		if err != nil {
			return err
		}
		force := true
		_, err = ri.Patch(ctx, u.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
			FieldManager: "clusterdns-helm-test", Force: &force, FieldValidation: "Strict"})
		return err
	}

	full := strings.Replace(coreDNSUsersValues, "  monitor:\n    enabled: true", "  monitor:\n    enabled: false", 1)
	// A one-node test cluster has no dns-critical PriorityClass: the
	// default system-cluster-critical exists in every cluster.
	full = strings.Replace(full, "priorityClassName: dns-critical", "priorityClassName: \"\"", 1)
	var configMap *unstructured.Unstructured
	for _, set := range []struct {
		name string
		args []string
	}{{"defaults", []string{"--set", "service.clusterIP=10.96.0.10"}}, {"every option", []string{"--values", valuesFile(t, full)}}} {
		objs := render(t, set.args...)
		for _, u := range objs {
			if err := apply(u); err != nil {
				t.Errorf("%s: apply %s %s/%s: %v", set.name, u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
			if set.name == "defaults" && u.GetKind() == "ConfigMap" && u.GetName() == "clusterdns" {
				configMap = u
			}
		}
	}
	if t.Failed() {
		return
	}

	// The rendered config file serves (the listen addresses and the
	// forwarding moved to loopback by flags, which beat the file).
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "clusterdns.yaml")
	if err := os.WriteFile(cfgFile, []byte(field(t, configMap, "data", "clusterdns.yaml").(string)), 0o644); err != nil {
		t.Fatal(err)
	}
	bin, cleanup, err := testbin.BuildServer(repoRoot, "clusterdns-helm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	proc, err := testbin.StartProcess("", bin, []string{"--config", cfgFile, "--kubeconfig", api.Kubeconfig,
		"--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--upstreams="}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("clusterdns output:\n%s", proc.Out.String())
		}
	})
	var dnsAddr string
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-proc.Done():
			t.Fatalf("clusterdns exited: %v\n%s", proc.Err(), proc.Out.String())
		default:
		}
		var health string
		sc := bufio.NewScanner(strings.NewReader(proc.Out.String()))
		for sc.Scan() {
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				switch l.Msg {
				case "serving":
					dnsAddr = l.Addr
				case "health endpoints":
					health = l.Addr
				}
			}
		}
		if dnsAddr != "" && health != "" {
			if resp, err := http.Get("http://" + health + "/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("clusterdns with the chart's config did not get ready in 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := new(dns.Msg)
	m.SetQuestion("kube-dns.kube-system.svc.cluster.local.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, dnsAddr)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.96.0.10" {
		t.Fatalf("kube-dns.kube-system.svc.cluster.local: %v, want the chart's Service at 10.96.0.10", r.Answer)
	}
}
