package kube

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/clusterdns/clusterdns/internal/testbin"
	"github.com/clusterdns/clusterdns/internal/testenv"
	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"
	dnsserver "github.com/clusterdns/clusterdns/server"
)

// The benchmarks are tests that run only with CLUSTERDNS_BENCH=1 (they
// take minutes and measure rather than check):
//
//	CLUSTERDNS_BENCH=1 go test -count=1 -v -timeout 30m -run Bench ./test/kube/
//
// TestBenchPropagation: the time from an API write's acknowledgement (an
// EndpointSlice update returned) to the changed DNS answer, 300 changes
// one every 50 ms, on a 1-service cluster; side by side with CoreDNS over
// the same API server when bench/coredns/build.sh has built it
// (propagation_bench_test.go).
// TestBenchScale: 10,000 services and 100,000 endpoints (1,000 headless
// services with one slice of 100 endpoints, 9,000 ClusterIP services): the
// time from start and from the informers' initial lists to /ready, the
// server's RSS, then the propagation of endpoint changes with all of it
// loaded. CLUSTERDNS_BENCH_SERVICES scales it down (e.g. 1000 for 1,000
// services and 10,000 endpoints).

func requireBench(t *testing.T) {
	t.Helper()
	if os.Getenv("CLUSTERDNS_BENCH") != "1" {
		t.Skip("benchmark: set CLUSTERDNS_BENCH=1 to run it")
	}
}

// benchClient is a clientset with client-side rate limits raised, speaking
// protobuf, for writing many objects at once.
func benchClient(t *testing.T, api *testenv.APIServer) kubernetes.Interface {
	t.Helper()
	rc := api.RESTConfig()
	rc.QPS, rc.Burst = 5000, 10000
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBenchPropagation(t *testing.T) {
	requireBench(t)
	api := startAPI(t)
	k := &cluster{t: t, c: benchClient(t, api)}
	k.namespace("bench")
	k.createService(headlessService("bench", "prop", tcpPort("http", 80)))
	sl := k.createSlice(slice("bench", "prop-1", "prop", discoveryv1.AddressTypeIPv4,
		[]discoveryv1.EndpointPort{slicePort("http", 80)}, endpoint("10.200.0.1", "", true)))
	const name = "prop.bench.svc.cluster.local"
	s := startServer(t, kubeArgs(api)...)
	s.waitReady(t, 60*time.Second)
	s.waitData(t, name, "A", "10.200.0.1")
	targets := []dnsTarget{{name: "clusterdns", addr: s.addr(), log: s.Out}}
	if cd := startCoreDNS(t, api.Kubeconfig, name, "10.200.0.1"); cd != nil {
		targets = append(targets, *cd)
	}

	const n, every = 300, 50 * time.Millisecond
	r := measurePropagation(t, k, sl, name, n, every, targets...)
	t.Logf("propagation, API write acknowledged → changed DNS answer, %d endpoint changes one every %v on a 1-service cluster (load average %s):\n%s",
		n, every, loadAverage(), r)
	saveLog(t, "clusterdns-propagation.log", s.Out)
}

// saveLog writes a server's output into $CLUSTERDNS_BENCH_LOGDIR, when set.
func saveLog(t *testing.T, name string, out *testbin.LogBuffer) {
	if dir := os.Getenv("CLUSTERDNS_BENCH_LOGDIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(out.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// loadAverage is /proc/loadavg's first three fields (the machine may be
// shared: figures are quoted with it).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

var (
	tookRe = regexp.MustCompile(`took=(\S+)`)
	timeRe = regexp.MustCompile(`^time=(\S+)`)
)

// logTime returns the time= of the first debug line with msg.
func logTime(logs, msg string) (time.Time, error) {
	for line := range strings.Lines(logs) {
		if !strings.Contains(line, `msg="`+msg+`"`) {
			continue
		}
		if m := timeRe.FindStringSubmatch(line); m != nil {
			return time.Parse(time.RFC3339Nano, m[1])
		}
	}
	return time.Time{}, fmt.Errorf("no log line %q", msg)
}

// firstOf is the first of d, or 0.
func firstOf(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[0]
}

// tookOf returns the took= durations of the debug lines with msg.
func tookOf(logs, msg string) []time.Duration {
	var out []time.Duration
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="`+msg+`"`) {
			continue
		}
		if m := tookRe.FindStringSubmatch(line); m != nil {
			if d, err := time.ParseDuration(m[1]); err == nil {
				out = append(out, d)
			}
		}
	}
	return out
}

func TestBenchScale(t *testing.T) {
	requireBench(t)
	services := 10000
	if v := os.Getenv("CLUSTERDNS_BENCH_SERVICES"); v != "" {
		var err error
		if services, err = strconv.Atoi(v); err != nil || services < 100 || services%100 != 0 {
			t.Fatalf("CLUSTERDNS_BENCH_SERVICES=%q: want a multiple of 100", v)
		}
	}
	const (
		namespaces   = 10
		perSlice     = 100
		headlessEach = 10 // one service in ten is headless, with one full slice
	)
	api := startAPI(t)
	k := &cluster{t: t, c: benchClient(t, api)}
	for n := range namespaces {
		k.namespace(fmt.Sprintf("scale-%d", n))
	}

	// Write the cluster with 16 concurrent clients' worth of requests.
	start := time.Now()
	type job struct {
		svc *corev1.Service
		sl  *discoveryv1.EndpointSlice
	}
	jobs := make(chan job)
	var created, failed atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range 16 {
		wg.Go(func() {
			ctx := context.Background()
			for j := range jobs {
				_, err := k.c.CoreV1().Services(j.svc.Namespace).Create(ctx, j.svc, metav1.CreateOptions{})
				if err == nil && j.sl != nil {
					_, err = k.c.DiscoveryV1().EndpointSlices(j.sl.Namespace).Create(ctx, j.sl, metav1.CreateOptions{})
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				created.Add(1)
			}
		})
	}
	endpoints := 0
	for i := range services {
		ns := fmt.Sprintf("scale-%d", i%namespaces)
		name := fmt.Sprintf("svc-%05d", i)
		j := job{svc: clusterIPService(ns, name, tcpPort("http", 80))}
		if i%headlessEach == 0 {
			j.svc = headlessService(ns, name, tcpPort("http", 80))
			h := i / headlessEach
			var eps []discoveryv1.Endpoint
			for e := range perSlice {
				ep := endpoint(fmt.Sprintf("10.%d.%d.%d", 64+h/256, h%256, e+1), "", true)
				ep.NodeName = ptr.To(fmt.Sprintf("node-%02d", (h+e)%50))
				ep.Zone = ptr.To([]string{"zone-a", "zone-b", "zone-c"}[e%3])
				ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: fmt.Sprintf("%s-%d", name, e),
					UID: "3f1b0c6e-0000-4000-8000-000000000000"}
				eps = append(eps, ep)
			}
			j.sl = slice(ns, name+"-abcde", name, discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{slicePort("http", 8080)}, eps...)
			j.sl.Labels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
			endpoints += perSlice
		}
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d services failed to be created; first error: %v", failed.Load(), firstErr.Load())
	}
	t.Logf("wrote %d services (%d headless) and %d endpoints in slices of %d in %v",
		created.Load(), services/headlessEach, endpoints, perSlice, time.Since(start).Round(time.Millisecond))

	// Initial sync: start the server now that the API holds everything.
	// /ready is polled every 2 ms; the source logs (debug) when the
	// informers' initial lists have arrived, with the time of the line.
	serverBinary(t) // built before the clock starts
	start = time.Now()
	s := startServer(t, kubeArgs(api, "--sync-timeout", "0")...)
	up := time.Since(start)
	for s.ready() != http.StatusOK {
		if time.Since(start) > 10*time.Minute {
			t.Fatal("not ready within 10 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
	readyAt := time.Now()
	ready := readyAt.Sub(start)
	logs := s.Out.String()
	listedAt, err := logTime(logs, "initial lists received")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("start → ready (load average %s): process answering DNS (SERVFAIL) after %v; /ready 200 after %v; "+
		"the informers' initial lists arrived %v after start (the source's own count: %v after it started watching), "+
		"so lists → ready %v (the line's time has millisecond precision); in between: synced %v, first snapshot %v, first index build %v; %v",
		loadAverage(), up.Round(time.Millisecond), ready.Round(time.Millisecond),
		listedAt.Sub(start).Round(time.Millisecond), tookOf(logs, "initial lists received"),
		readyAt.Sub(listedAt).Round(time.Millisecond), tookOf(logs, "synced with the API server"),
		firstOf(tookOf(logs, "snapshot published")), firstOf(tookOf(logs, "cluster index built")),
		procMemory(t, s.Cmd.Process.Pid))
	last := fmt.Sprintf("svc-%05d.scale-%d.svc.cluster.local", services-1, (services-1)%namespaces)
	s.waitDig(t, propagate, last, "A", "an address", func(a *answer) bool { return a.status == "NOERROR" && len(a.answer) == 1 })
	first := "svc-00000.scale-0.svc.cluster.local"
	s.waitDig(t, propagate, first, "A", "100 addresses", func(a *answer) bool { return len(a.answer) == perSlice })
	time.Sleep(10 * time.Second)
	t.Logf("10 s later: %v", procMemory(t, s.Cmd.Process.Pid))

	// One endpoint change at a time with everything loaded.
	sl, err := k.c.DiscoveryV1().EndpointSlices("scale-0").Get(context.Background(), "svc-00000-abcde", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 100
	r := measurePropagation(t, k, sl, first, n, 50*time.Millisecond, dnsTarget{name: "clusterdns", addr: s.addr(), log: s.Out})
	t.Logf("propagation with %d services and %d endpoints loaded, %d endpoint changes one every 50ms (load average %s):\n%s  after: %v",
		services, endpoints, n, loadAverage(), r, procMemory(t, s.Cmd.Process.Pid))
	// The server returns the changes' garbage to the OS once they settle
	// (1 s without a change).
	time.Sleep(3 * time.Second)
	t.Logf("3 s after the last change: %v", procMemory(t, s.Cmd.Process.Pid))
	s.stop()
	saveLog(t, "clusterdns-scale.log", s.Out)
	memoryBreakdown(t, api)
}

// memoryBreakdown measures, in this process and against the same API
// server, the live heap of: plain informers on services and slices (no
// transform, what a naive source would hold); the KubeSource with its
// Store and first snapshot; and that plus the server's cluster index.
func memoryBreakdown(t *testing.T, api *testenv.APIServer) {
	heap := func() int64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	quiet := slog.New(slog.DiscardHandler)
	rc := api.RESTConfig()
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}

	base := heap()
	ctx, cancel := context.WithCancel(context.Background())
	f := informers.NewSharedInformerFactory(client, 0)
	f.Core().V1().Services().Informer()
	f.Discovery().V1().EndpointSlices().Informer()
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	raw := heap() - base
	cancel()
	f.Shutdown()
	f = nil

	base = heap()
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	store := registrytest.NewWith(t, registry.Options{Logger: quiet})
	kapi, err := registry.NewKubeAPI(rc)
	if err != nil {
		t.Fatal(err)
	}
	src := registry.NewKubeSource(kapi, store.Store, registry.KubeOptions{Logger: quiet})
	go src.Run(ctx)
	for !src.Synced() {
		time.Sleep(10 * time.Millisecond)
	}
	withStore := heap() - base
	h, err := dnsserver.NewHandler(dnsserver.Options{Domains: []string{"cluster.local"}, TTL: 5, NegativeTTL: 5}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := h.Update(store.Snapshot()); err != nil {
		t.Fatal(err)
	}
	fullBuild := time.Since(start)
	withIndex := heap() - base
	t.Logf("live heap after GC, in-process: plain informers (services+slices, no transform) %d MiB; "+
		"KubeSource (informers caching the model) + Store + snapshot %d MiB; plus the server's cluster index %d MiB (index alone %d MiB)",
		raw>>20, withStore>>20, withIndex>>20, (withIndex-withStore)>>20)

	// What one pod event costs (pods are watched with pods: verified and
	// autopath): the store marks the snapshot Full, the handler rebuilds.
	var podTimes []time.Duration
	for i := range 5 {
		p := &registry.Pod{Key: registry.Key{Namespace: "scale-0", Name: fmt.Sprintf("pod-%d", i)},
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 250, 0, byte(i + 1)})}}
		start := time.Now()
		store.UpsertPod(p)
		snap := store.Flush()
		if err := h.Update(snap); err != nil {
			t.Fatal(err)
		}
		podTimes = append(podTimes, time.Since(start))
	}
	runtime.KeepAlive(h)
	t.Logf("in-process: first (full) index build %v; one pod added, Store.Flush + Handler.Update: %v",
		fullBuild.Round(time.Millisecond), podTimes)
}

// procMemory reads a process's memory; the benchmark fails if it cannot.
func procMemory(t *testing.T, pid int) testbin.Memory {
	t.Helper()
	m, err := testbin.ProcMemory(pid)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
