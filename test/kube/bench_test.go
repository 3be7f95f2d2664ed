package kube

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
// loaded, then 60 s of 100 endpoint changes a second with VmRSS sampled
// through it; with the Go runtime's account of its memory (heap in use,
// stacks, runtime structures) at each step.
// CLUSTERDNS_BENCH_SERVICES scales it down (e.g. 1000 for 1,000 services
// and 10,000 endpoints); CLUSTERDNS_BENCH_COMPARE=<clusterdns binary>
// measures another build against the same API server, alternating with
// this tree's CLUSTERDNS_BENCH_ROUNDS times (default 1);
// CLUSTERDNS_BENCH_PROFILES=<dir> saves the servers' heap profiles there.

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
	api := startAPI(t)
	k := &cluster{t: t, c: benchClient(t, api)}
	sc := writeScaleCluster(t, k, services)

	// This tree's server, and with CLUSTERDNS_BENCH_COMPARE=<binary>
	// another build measured against the same API server, alternating
	// (CLUSTERDNS_BENCH_ROUNDS times each), so that a shared machine's
	// load falls on both alike.
	bins := []string{serverBinary(t)} // built before the clock starts
	if other := os.Getenv("CLUSTERDNS_BENCH_COMPARE"); other != "" {
		bins = append(bins, other)
	}
	rounds := 1
	if v := os.Getenv("CLUSTERDNS_BENCH_ROUNDS"); v != "" {
		var err error
		if rounds, err = strconv.Atoi(v); err != nil || rounds < 1 {
			t.Fatalf("CLUSTERDNS_BENCH_ROUNDS=%q: want a positive number", v)
		}
	}
	for r := range rounds {
		for i, bin := range bins {
			name := "this tree"
			if i > 0 {
				name = "compare " + bin
			}
			t.Logf("---- round %d, %s", r+1, name)
			measureScale(t, k, api, sc, bin)
		}
	}
	memoryBreakdown(t, api)
}

// scaleCluster is what writeScaleCluster wrote.
type scaleCluster struct {
	services, endpoints int
	namespaces          int
	headless            []objKey // the headless services' slices
}

// objKey names a namespaced object of the scale cluster.
type objKey struct{ Namespace, Name string }

// writeScaleCluster writes services services in 10 namespaces, one in ten
// headless with one slice of 100 endpoints (node and zone set, a Pod
// targetRef), the others ClusterIP, with 16 concurrent writers.
func writeScaleCluster(t *testing.T, k *cluster, services int) *scaleCluster {
	const (
		namespaces   = 10
		perSlice     = 100
		headlessEach = 10 // one service in ten is headless, with one full slice
	)
	sc := &scaleCluster{services: services, namespaces: namespaces}
	for n := range namespaces {
		k.namespace(fmt.Sprintf("scale-%d", n))
	}
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
			sc.endpoints += perSlice
			sc.headless = append(sc.headless, objKey{ns, j.sl.Name})
		}
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d services failed to be created; first error: %v", failed.Load(), firstErr.Load())
	}
	t.Logf("wrote %d services (%d headless) and %d endpoints in slices of %d in %v",
		created.Load(), services/headlessEach, sc.endpoints, perSlice, time.Since(start).Round(time.Millisecond))
	return sc
}

// measureScale starts the server binary bin on the scale cluster and logs
// its memory: after the initial sync, 10 s later, around 100 propagation
// changes, and through 60 s of 100 endpoint changes per second (the most
// VmRSS sampled every 100 ms), with the Go runtime's own account of its
// memory (its /metrics) at each point. With CLUSTERDNS_BENCH_PROFILES=dir
// it also saves heap profiles (after sync, after the churn) there.
func measureScale(t *testing.T, k *cluster, api *testenv.APIServer, sc *scaleCluster, bin string) {
	metricsPort := freeTCPPort(t)
	start := time.Now()
	s := startServerBin(t, bin, kubeArgs(api, "--sync-timeout", "0",
		"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", metricsPort), "--pprof")...)
	defer s.stop()
	rt := &runtimeStats{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", metricsPort)}
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
	last := fmt.Sprintf("svc-%05d.scale-%d.svc.cluster.local", sc.services-1, (sc.services-1)%sc.namespaces)
	s.waitDig(t, propagate, last, "A", "an address", func(a *answer) bool { return a.status == "NOERROR" && len(a.answer) == 1 })
	first := "svc-00000.scale-0.svc.cluster.local"
	s.waitDig(t, propagate, first, "A", "100 addresses", func(a *answer) bool { return len(a.answer) == 100 })
	time.Sleep(10 * time.Second)
	t.Logf("10 s later: %v; Go runtime: %v", procMemory(t, s.Cmd.Process.Pid), rt)
	rt.saveHeap("synced")

	// One endpoint change at a time with everything loaded.
	sl, err := k.c.DiscoveryV1().EndpointSlices("scale-0").Get(context.Background(), "svc-00000-abcde", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 100
	r := measurePropagation(t, k, sl, first, n, 50*time.Millisecond, dnsTarget{name: "clusterdns", addr: s.addr(), log: s.Out})
	t.Logf("propagation with %d services and %d endpoints loaded, %d endpoint changes one every 50ms (load average %s):\n%s  after: %v",
		sc.services, sc.endpoints, n, loadAverage(), r, procMemory(t, s.Cmd.Process.Pid))
	// The server returns the changes' garbage to the OS once they settle
	// (1 s without a change).
	time.Sleep(3 * time.Second)
	t.Logf("3 s after the last change: %v", procMemory(t, s.Cmd.Process.Pid))

	// A steady stream: 100 endpoint changes a second for 60 s.
	cpu0 := procCPU(t, s.Cmd.Process.Pid)
	ch := churnEndpoints(t, k, sc.headless[1:], 100, 60*time.Second, s.Cmd.Process.Pid)
	cpu := procCPU(t, s.Cmd.Process.Pid) - cpu0
	t.Logf("churn: %d endpoint changes in %v (%.0f/s) over %d slices; server CPU %v (%.1f%% of a core); VmRSS sampled every 100 ms: max %d MiB (at %v), median %d MiB; at the end %v; Go runtime: %v",
		ch.changes, ch.took.Round(time.Millisecond), float64(ch.changes)/ch.took.Seconds(), len(sc.headless)-1,
		cpu, 100*cpu.Seconds()/ch.took.Seconds(),
		ch.max.RSS>>20, ch.maxAt.Round(time.Second), ch.median>>20, procMemory(t, s.Cmd.Process.Pid), rt)
	rt.saveHeap("churn")
	time.Sleep(3 * time.Second)
	t.Logf("3 s after the churn: %v", procMemory(t, s.Cmd.Process.Pid))
	s.stop()
	saveLog(t, "clusterdns-scale.log", s.Out)
}

// procCPU is the user and system CPU time process pid has used
// (/proc/<pid>/stat, in clock ticks of 1/100 s).
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name, which is in parentheses: state is
	// the first; utime and stime the 12th and 13th.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// churn is what churnEndpoints measured.
type churn struct {
	changes int
	took    time.Duration
	max     testbin.Memory // the sample with the most VmRSS
	maxAt   time.Duration  // when it was taken, from the start
	median  int64          // median VmRSS of the samples
}

// churnEndpoints writes rate endpoint changes a second for d, round robin
// over targets (each change moves one endpoint of a slice to another
// address: 10.x.y.n ↔ 10.x.y.n+100), from 8 writers, while sampling the
// VmRSS of process pid every 100 ms.
func churnEndpoints(t *testing.T, k *cluster, targets []objKey, rate int, d time.Duration, pid int) churn {
	t.Helper()
	var (
		mu      sync.Mutex
		samples []int64
		res     churn
		stop    = make(chan struct{})
		sampled = make(chan struct{})
	)
	start := time.Now()
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			m, err := testbin.ProcMemory(pid)
			if err != nil {
				continue // the failure shows in the caller's next procMemory
			}
			mu.Lock()
			samples = append(samples, m.RSS)
			if m.RSS > res.max.RSS {
				res.max, res.maxAt = m, time.Since(start)
			}
			mu.Unlock()
		}
	}()
	jobs := make(chan int, 64)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	var changes atomic.Int64
	var latest sync.Map // slice index → its last written *discoveryv1.EndpointSlice
	for range 8 {
		wg.Go(func() {
			ctx := context.Background()
			for i := range jobs {
				var sl *discoveryv1.EndpointSlice
				if v, ok := latest.Load(i); ok {
					sl = v.(*discoveryv1.EndpointSlice)
				} else {
					got, err := k.c.DiscoveryV1().EndpointSlices(targets[i].Namespace).Get(ctx, targets[i].Name, metav1.GetOptions{})
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
						continue
					}
					sl = got
				}
				ep := &sl.Endpoints[int(changes.Load())%len(sl.Endpoints)]
				a := netip.MustParseAddr(ep.Addresses[0]).As4()
				if a[3] <= 100 {
					a[3] += 100
				} else {
					a[3] -= 100
				}
				ep.Addresses = []string{netip.AddrFrom4(a).String()}
				got, err := k.c.DiscoveryV1().EndpointSlices(sl.Namespace).Update(ctx, sl, metav1.UpdateOptions{})
				if apierrors.IsConflict(err) {
					latest.Delete(i) // another writer: read it again next time
					continue
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				latest.Store(i, got)
				changes.Add(1)
			}
		})
	}
	total := rate * int(d/time.Second)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for n := range total {
		<-tick.C
		jobs <- n % len(targets)
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	res.took = time.Since(start)
	close(stop)
	<-sampled
	if err := firstErr.Load(); err != nil {
		t.Fatalf("churn: %v", err)
	}
	res.changes = int(changes.Load())
	slices.Sort(samples)
	if len(samples) > 0 {
		res.median = samples[len(samples)/2]
	}
	return res
}

// runtimeStats reads the Go runtime's account of a server's memory from
// its /metrics (and heap profiles from its /debug/pprof/).
type runtimeStats struct {
	t   *testing.T
	url string
}

// client asks for plain responses: a gzip writer in the server's pool
// would show in the heap it measures.
func (r *runtimeStats) client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}
}

var metricLine = regexp.MustCompile(`(?m)^(go_memstats_[a-z_]+|go_gc_gogc_percent|go_gc_gomemlimit_bytes) ([0-9.e+]+)$`)

// String is one line: live heap at the last GC is not exported, so it
// gives the heap in use (live + not yet collected), the heap released
// to the OS, stacks, the runtime's own structures, and the next GC goal.
func (r *runtimeStats) String() string {
	resp, err := r.client().Get(r.url + "/metrics")
	if err != nil {
		return "(metrics: " + err.Error() + ")"
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	v := map[string]float64{}
	for _, m := range metricLine.FindAllStringSubmatch(b.String(), -1) {
		f, _ := strconv.ParseFloat(m[2], 64)
		v[m[1]] = f
	}
	mib := func(name string) string { return fmt.Sprintf("%.1f", v[name]/(1<<20)) }
	other := v["go_memstats_sys_bytes"] - v["go_memstats_heap_sys_bytes"] - v["go_memstats_stack_sys_bytes"]
	return fmt.Sprintf("heap in use %s MiB (objects %s MiB), heap idle %s of which released %s MiB, stacks %s MiB, runtime other %.1f MiB (GC metadata %s), next GC at %s MiB",
		mib("go_memstats_heap_inuse_bytes"), mib("go_memstats_heap_alloc_bytes"), mib("go_memstats_heap_idle_bytes"),
		mib("go_memstats_heap_released_bytes"), mib("go_memstats_stack_inuse_bytes"), other/(1<<20),
		mib("go_memstats_gc_sys_bytes"), mib("go_memstats_next_gc_bytes"))
}

// saveHeap writes a heap profile (after a GC) to
// $CLUSTERDNS_BENCH_PROFILES/heap-<what>-<pid>.pb.gz when set.
func (r *runtimeStats) saveHeap(what string) {
	dir := os.Getenv("CLUSTERDNS_BENCH_PROFILES")
	if dir == "" {
		return
	}
	resp, err := r.client().Get(r.url + "/debug/pprof/heap?gc=1")
	if err != nil {
		r.t.Logf("heap profile: %v", err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Logf("heap profile: %v", err)
		return
	}
	f := filepath.Join(dir, fmt.Sprintf("heap-%s-%d.pb.gz", what, time.Now().UnixNano()))
	if err := os.WriteFile(f, b, 0o644); err != nil {
		r.t.Logf("heap profile: %v", err)
		return
	}
	r.t.Logf("heap profile (%s): %s", what, f)
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
