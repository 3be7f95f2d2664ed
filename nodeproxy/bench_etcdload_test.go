package nodeproxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/clusterdns/clusterdns/internal/testenv"
)

// cmpLoadEtcd adds bulk services from..to-1 (from >= 1: service 0 must
// have been created through the API) by writing them, their EndpointSlices
// and the IPAddress objects of their ClusterIPs straight into the API
// server's etcd, as copies of what the API server stored for service 0
// (every default filled in), in the API server's own protobuf encoding
// and under the keys it uses (found next to service 0's). It returns once
// a list through the API server sees them all. etcd is written through its
// JSON gateway (/v3/kv/txn), so no etcd client library is needed.
func cmpLoadEtcd(ctx context.Context, api *testenv.APIServer, c kubernetes.Interface, from, to int) error {
	if from < 1 {
		return fmt.Errorf("etcd load from %d: service 0 must come from the API", from)
	}
	ns0, name0, ip0, _ := cmpNames(0)
	svcT, err := c.CoreV1().Services(ns0).Get(ctx, name0, metav1.GetOptions{})
	if err != nil {
		return err
	}
	slT, err := c.DiscoveryV1().EndpointSlices(ns0).Get(ctx, name0+"-1", metav1.GetOptions{})
	if err != nil {
		return err
	}
	ipT, err := c.NetworkingV1().IPAddresses().Get(ctx, ip0, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("IPAddress of service 0's ClusterIP: %w", err)
	}
	e := &etcdGateway{url: api.EtcdEndpoint, hc: &http.Client{Timeout: 30 * time.Second}}
	// The keys of service 0's objects give the prefixes.
	keys, err := e.keys(ctx, "/")
	if err != nil {
		return err
	}
	find := func(kind, suffix string) (string, error) {
		for _, k := range keys {
			if strings.Contains(k, kind) && strings.HasSuffix(k, suffix) {
				return strings.TrimSuffix(k, suffix), nil
			}
		}
		return "", fmt.Errorf("no etcd key for %s ending in %s", kind, suffix)
	}
	svcPrefix, err := find("services", "/"+ns0+"/"+name0)
	if err != nil {
		return err
	}
	slPrefix, err := find("endpointslices", "/"+ns0+"/"+name0+"-1")
	if err != nil {
		return err
	}
	ipPrefix, err := find("ipaddresses", "/"+ip0)
	if err != nil {
		return err
	}
	stored, err := e.get(ctx, svcPrefix+"/"+ns0+"/"+name0)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(stored, []byte("k8s\x00")) {
		return fmt.Errorf("the API server does not store protobuf (service 0 starts %q)", stored[:min(len(stored), 8)])
	}
	pb := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	encode := func(obj runtime.Object, gv, kind string) ([]byte, error) {
		obj.GetObjectKind().SetGroupVersionKind(schemaGVK(gv, kind))
		var b bytes.Buffer
		err := pb.Encode(obj, &b)
		return b.Bytes(), err
	}
	now := metav1.Now()
	fresh := func(m *metav1.ObjectMeta, ns, name string) {
		m.Namespace, m.Name = ns, name
		m.UID = newUID()
		m.ResourceVersion = ""
		m.CreationTimestamp = now
		m.ManagedFields = nil
	}

	type kv struct {
		key string
		val []byte
	}
	build := func(i int) ([]kv, error) {
		ns, name, ip, addrs := cmpNames(i)
		svc := svcT.DeepCopy()
		fresh(&svc.ObjectMeta, ns, name)
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip, []string{ip}
		sl := slT.DeepCopy()
		fresh(&sl.ObjectMeta, ns, name+"-1")
		sl.Labels[discoveryv1.LabelServiceName] = name
		sl.Endpoints = nil
		for _, a := range addrs {
			ep := slT.Endpoints[0].DeepCopy()
			ep.Addresses = []string{a}
			sl.Endpoints = append(sl.Endpoints, *ep)
		}
		ipa := ipT.DeepCopy()
		fresh(&ipa.ObjectMeta, "", ip)
		ipa.Spec.ParentRef.Namespace, ipa.Spec.ParentRef.Name = ns, name
		sv, err := encode(svc, "v1", "Service")
		if err != nil {
			return nil, err
		}
		slv, err := encode(sl, "discovery.k8s.io/v1", "EndpointSlice")
		if err != nil {
			return nil, err
		}
		ipv, err := encode(ipa, "networking.k8s.io/v1", "IPAddress")
		if err != nil {
			return nil, err
		}
		return []kv{
			{ipPrefix + "/" + ip, ipv},
			{svcPrefix + "/" + ns + "/" + name, sv},
			{slPrefix + "/" + ns + "/" + name + "-1", slv},
		}, nil
	}

	const perTxn = 40 // services: 120 puts, under etcd's default --max-txn-ops 128
	work := make(chan int)
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := range work {
				var puts []kv
				for i := start; i < min(start+perTxn, to); i++ {
					p, err := build(i)
					if err != nil {
						errc <- err
						return
					}
					puts = append(puts, p...)
				}
				ops := make([]map[string]any, len(puts))
				for j, p := range puts {
					ops[j] = map[string]any{"requestPut": map[string]string{
						"key":   base64.StdEncoding.EncodeToString([]byte(p.key)),
						"value": base64.StdEncoding.EncodeToString(p.val),
					}}
				}
				if _, err := e.call(ctx, "/v3/kv/txn", map[string]any{"success": ops}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	go func() {
		defer close(work)
		for start := from; start < to; start += perTxn {
			select {
			case work <- start:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}

	// Wait until the API server's lists have them all (and bench/probe;
	// default/kubernetes has no slice: --endpoint-reconciler-type=none).
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var nsvc, nsl int
		svcs, err1 := c.CoreV1().Services("").List(ctx, metav1.ListOptions{Limit: 1})
		sls, err2 := c.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{Limit: 1})
		if err1 == nil && err2 == nil {
			nsvc, nsl = listCount(svcs.ListMeta, len(svcs.Items)), listCount(sls.ListMeta, len(sls.Items))
			if nsvc >= to+2 && nsl >= to+1 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after the etcd writes the API server lists %d services and %d slices, not %d and %d (%v, %v)",
				nsvc, nsl, to+2, to+1, err1, err2)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func listCount(m metav1.ListMeta, items int) int {
	if m.RemainingItemCount != nil {
		return items + int(*m.RemainingItemCount)
	}
	return items
}

func schemaGVK(gv, kind string) schema.GroupVersionKind {
	g, v, ok := strings.Cut(gv, "/")
	if !ok {
		g, v = "", gv
	}
	return schema.GroupVersionKind{Group: g, Version: v, Kind: kind}
}

func newUID() types.UID {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]))
}

// etcdGateway speaks to etcd's JSON gateway.
type etcdGateway struct {
	url string
	hc  *http.Client
}

func (e *etcdGateway) call(ctx context.Context, path string, body any) (map[string]any, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("etcd %s: %s: %s", path, resp.Status, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("etcd %s: %w", path, err)
	}
	return m, nil
}

// keys lists the keys under prefix.
func (e *etcdGateway) keys(ctx context.Context, prefix string) ([]string, error) {
	end := []byte(prefix)
	end[len(end)-1]++
	m, err := e.call(ctx, "/v3/kv/range", map[string]any{
		"key":       base64.StdEncoding.EncodeToString([]byte(prefix)),
		"range_end": base64.StdEncoding.EncodeToString(end),
		"keys_only": true,
	})
	if err != nil {
		return nil, err
	}
	kvs, _ := m["kvs"].([]any)
	var out []string
	for _, kv := range kvs {
		k, _ := kv.(map[string]any)["key"].(string)
		b, err := base64.StdEncoding.DecodeString(k)
		if err == nil {
			out = append(out, string(b))
		}
	}
	return out, nil
}

// get returns the value of key.
func (e *etcdGateway) get(ctx context.Context, key string) ([]byte, error) {
	m, err := e.call(ctx, "/v3/kv/range", map[string]any{"key": base64.StdEncoding.EncodeToString([]byte(key))})
	if err != nil {
		return nil, err
	}
	kvs, _ := m["kvs"].([]any)
	if len(kvs) == 0 {
		return nil, fmt.Errorf("etcd: no key %s", key)
	}
	v, _ := kvs[0].(map[string]any)["value"].(string)
	return base64.StdEncoding.DecodeString(v)
}
