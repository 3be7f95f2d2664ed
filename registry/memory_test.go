package registry

import (
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The interner holds what repeats across objects, shared, and nothing per
// endpoint: converting many endpoints with their own addresses, hostnames
// and pod names grows it by the slice's shape only.
func TestInternerInvariants(t *testing.T) {
	in := newInterner()
	slice := func(i int) *discoveryv1.EndpointSlice {
		s := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("db-%d", i), Labels: map[string]string{ServiceNameLabel: "db"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("cql"), Port: ptr.To[int32](9042)}},
		}
		for j := range 50 {
			n := i*50 + j
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
				Addresses: []string{netip.AddrFrom4([4]byte{10, 1, byte(n >> 8), byte(n)}).String()},
				Hostname:  ptr.To(fmt.Sprintf("host-%d", n)),
				NodeName:  ptr.To(fmt.Sprintf("node-%d", n%3)),
				Zone:      ptr.To("zone-a"),
			})
		}
		return s
	}
	first, err := in.convertSlice(slice(0))
	if err != nil {
		t.Fatal(err)
	}
	held := len(in.strs)
	var last *EndpointSlice
	for i := 1; i < 20; i++ {
		if last, err = in.convertSlice(slice(i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(in.strs) != held {
		t.Fatalf("the interner grew from %d to %d strings over 1,000 more endpoints: it must hold only what repeats", held, len(in.strs))
	}
	if len(in.places) != 3 {
		t.Fatalf("%d places for 3 nodes in one zone", len(in.places))
	}
	// Shared, not copied: the same bytes and the same Place.
	if unsafe.StringData(first.Namespace) != unsafe.StringData(last.Namespace) ||
		unsafe.StringData(first.Ports[0].Name) != unsafe.StringData(last.Ports[0].Name) {
		t.Error("namespace or port name not shared between slices")
	}
	if first.Endpoints[0].Place != last.Endpoints[1].Place { // both on node-0
		t.Error("endpoints of one node do not share its Place")
	}
	if first.Endpoints[0].Place.NodeName != "node-0" || last.Endpoints[49].Hostname != "host-999" {
		t.Errorf("interning changed a value: %+v %q", first.Endpoints[0].Place, last.Endpoints[49].Hostname)
	}
}

// compactObjects' blocks are allocated at their final size (the objects of
// one kind lie in one array, back to back) and its copies are capped.
func TestCompactBlocksInvariants(t *testing.T) {
	var o Objects
	for i := range 40 {
		k := Key{Namespace: "ns", Name: fmt.Sprintf("s%d", i)}
		o.Services = append(o.Services, &Service{Key: k, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.1"), netip.MustParseAddr("fd00::1")},
			Ports: []ServicePort{{Name: "http", Port: 80}, {Name: "grpc", Port: 9090}}})
		o.Slices = append(o.Slices, &EndpointSlice{Key: Key{Namespace: "ns", Name: k.Name + "-1"}, Service: k.Name,
			Ports:     []EndpointPort{{Name: "http", Port: 8080}},
			Endpoints: []Endpoint{{Address: netip.MustParseAddr("10.1.0.1"), Hostname: "a"}, {Address: netip.MustParseAddr("10.1.0.2"), PodName: "p"}}})
		o.Pods = append(o.Pods, &Pod{Key: Key{Namespace: "ns", Name: fmt.Sprintf("p%d", i)}, IPs: []netip.Addr{netip.MustParseAddr("10.1.0.3")}})
	}
	c := compactObjects(o, newInterner())
	contiguous := func(what string, prevEnd, next unsafe.Pointer) {
		t.Helper()
		if prevEnd != next {
			t.Fatalf("%s: not in one block (a block was too small and reallocated)", what)
		}
	}
	for i := 1; i < len(c.Services); i++ {
		a, b := c.Services[i-1], c.Services[i]
		contiguous("services", unsafe.Add(unsafe.Pointer(a), unsafe.Sizeof(*a)), unsafe.Pointer(b))
		contiguous("service ports", unsafe.Add(unsafe.Pointer(unsafe.SliceData(a.Ports)), uintptr(len(a.Ports))*unsafe.Sizeof(a.Ports[0])),
			unsafe.Pointer(unsafe.SliceData(b.Ports)))
		if cap(a.Ports) != len(a.Ports) || cap(a.ClusterIPs) != len(a.ClusterIPs) {
			t.Fatal("a service's ports or addresses are not capped")
		}
	}
	for i := 1; i < len(c.Slices); i++ {
		a, b := c.Slices[i-1], c.Slices[i]
		contiguous("endpoints", unsafe.Add(unsafe.Pointer(unsafe.SliceData(a.Endpoints)), uintptr(len(a.Endpoints))*unsafe.Sizeof(a.Endpoints[0])),
			unsafe.Pointer(unsafe.SliceData(b.Endpoints)))
		if cap(a.Endpoints) != len(a.Endpoints) || cap(a.Ports) != len(a.Ports) {
			t.Fatal("a slice's endpoints or ports are not capped")
		}
	}
	// The last service's addresses and the first pod's share the one
	// address block.
	last := c.Services[len(c.Services)-1]
	contiguous("addresses", unsafe.Add(unsafe.Pointer(unsafe.SliceData(last.ClusterIPs)), uintptr(len(last.ClusterIPs))*unsafe.Sizeof(netip.Addr{})),
		unsafe.Pointer(unsafe.SliceData(c.Pods[0].IPs)))
}

// textArena never writes copied text again: later copies leave earlier
// strings as they were, also across blocks.
func TestTextArenaImmutable(t *testing.T) {
	var a textArena
	var got, want []string
	for i := range 5000 { // several 64 KiB blocks
		s := fmt.Sprintf("name-%d-%s", i, "abcdefghij")
		got, want = append(got, a.copy(s)), append(want, s)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("copy %d became %q, want %q", i, got[i], want[i])
		}
	}
}

// A service's first endpoints do not outlive a change: once its slice is
// replaced and the change published, the first slice is collected. (The
// first snapshot's entries shared one block, in which a replaced entry
// stayed reachable with its endpoints and slices.)
func TestReplacedSlicesCollected(t *testing.T) {
	st := NewStore(Options{Logger: slog.New(slog.DiscardHandler)})
	const n = 200
	slice := func(i, gen int) *EndpointSlice {
		name := fmt.Sprintf("s%d", i)
		return &EndpointSlice{Key: Key{Namespace: "ns", Name: name + "-1"}, Service: name,
			Ports:     []EndpointPort{{Name: "http", Protocol: TCP, Port: 80}},
			Endpoints: []Endpoint{{Address: netip.AddrFrom4([4]byte{10, byte(gen), byte(i >> 8), byte(i)}), Ready: true}}}
	}
	// Half the services change (their first slices are tracked), half do
	// not (and keep whatever block they were built in alive).
	var alive atomic.Int64
	for i := range 2 * n {
		st.UpsertService(&Service{Key: Key{Namespace: "ns", Name: fmt.Sprintf("s%d", i)}, Kind: KindClusterIP,
			ClusterIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})}})
		sl := slice(i, 1)
		if i < n {
			alive.Add(1)
			runtime.SetFinalizer(sl, func(*EndpointSlice) { alive.Add(-1) })
		}
		st.UpsertEndpointSlice(sl)
	}
	st.MarkSynced()
	st.Flush()
	for i := range n {
		st.UpsertEndpointSlice(slice(i, 2))
	}
	snap := st.Flush()
	deadline := time.Now().Add(10 * time.Second)
	for alive.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d replaced first slices still reachable", alive.Load(), n)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := snap.Service(Key{Namespace: "ns", Name: "s7"}).Endpoints[0].Address; got != netip.AddrFrom4([4]byte{10, 2, 0, 7}) {
		t.Fatalf("s7 serves %s after the change", got)
	}
	runtime.KeepAlive(st)
}
