// Command gencluster writes the data of the foundation benchmark: a cluster
// of N services as Kubernetes manifests for clusterdns, the same DNS records
// as a Knot DNS zone file for cluster.local., and a dnsperf query file.
//
//	go run ./bench/gencluster -out DIR [-services 10000] [-headless 1000] ...
//
// It writes
//
//	DIR/zones/cluster.yaml     Namespaces, Services and EndpointSlices (multi-document YAML, or a List with -list)
//	DIR/cluster.local.zone     the same records for Knot (TTL 5, SOA/NS as clusterdns serves them)
//	DIR/queries.txt            dnsperf input: 70% service A, 10% SRV, 10% headless A, 10% NXDOMAIN
//	DIR/samples.env            names for the correctness check, with expected answer counts (shell syntax)
//
// With -check (the default) it then loads zones/ through the registry's file
// source, derives every record clusterdns must serve from the snapshot, and
// fails unless that set equals the zone file's records: the manifests are
// accepted by clusterdns's parser, and both servers hold the same data.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/clusterdns/clusterdns/registry"
)

const (
	zone = "cluster.local"
	ttl  = 5
	// Same SOA as clusterdns serves (the serial differs and is not compared).
	soaRData = "ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"
	nsRData  = "ns.dns.cluster.local."
)

type port struct {
	name  string
	proto string // TCP or UDP
	port  int32
}

type endpoint struct {
	hostname string
	ip       netip.Addr
}

type service struct {
	ns, name  string
	headless  bool
	clusterIP netip.Addr
	ports     []port
	endpoints []endpoint
}

func (s *service) fqdn() string { return s.name + "." + s.ns + ".svc." + zone + "." }

type config struct {
	out        string
	services   int
	headless   int
	endpoints  int
	namespaces int
	queries    int
	seed       uint64
	list       bool
	check      bool
}

func main() {
	var c config
	flag.StringVar(&c.out, "out", "", "output folder (created)")
	flag.IntVar(&c.services, "services", 10000, "number of services in total")
	flag.IntVar(&c.headless, "headless", 1000, "how many of them are headless")
	flag.IntVar(&c.endpoints, "endpoints", 10, "ready endpoints per headless service")
	flag.IntVar(&c.namespaces, "namespaces", 20, "number of namespaces")
	flag.IntVar(&c.queries, "queries", 1000000, "lines in the dnsperf query file")
	flag.Uint64Var(&c.seed, "seed", 1, "random seed of the query mix")
	flag.BoolVar(&c.list, "list", false, "write the manifests as one `kind: List` instead of multi-document YAML")
	flag.BoolVar(&c.check, "check", true, "load the manifests with clusterdns's parser and compare its records with the zone file")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("gencluster: ")
	if c.out == "" {
		log.Fatal("-out is required")
	}
	if c.headless > c.services || c.services <= 0 || c.namespaces <= 0 || c.endpoints <= 0 || c.headless < 0 {
		log.Fatal("need 0 <= headless <= services, services > 0, namespaces > 0, endpoints > 0")
	}
	if c.services > 1<<20-16 || c.headless*c.endpoints > 1<<18-16 {
		log.Fatal("too many services or endpoints for the address ranges (10.96.0.0/12, 10.244.0.0/14)")
	}
	svcs := model(c)
	if err := os.MkdirAll(filepath.Join(c.out, "zones"), 0o755); err != nil {
		log.Fatal(err)
	}
	must(writeFile(filepath.Join(c.out, "zones", "cluster.yaml"), func(w io.Writer) error { return writeYAML(w, c, svcs) }))
	must(writeFile(filepath.Join(c.out, "cluster.local.zone"), func(w io.Writer) error { return writeZone(w, svcs) }))
	must(writeFile(filepath.Join(c.out, "queries.txt"), func(w io.Writer) error { return writeQueries(w, c, svcs) }))
	must(writeFile(filepath.Join(c.out, "samples.env"), func(w io.Writer) error { return writeSamples(w, svcs) }))
	nHeadless, nEP := 0, 0
	for _, s := range svcs {
		if s.headless {
			nHeadless++
			nEP += len(s.endpoints)
		}
	}
	fmt.Printf("gencluster: %d services (%d ClusterIP, %d headless with %d endpoints) in %d namespaces, %d zone records, %d queries -> %s\n",
		len(svcs), len(svcs)-nHeadless, nHeadless, nEP, c.namespaces, len(zoneRecords(svcs)), c.queries, c.out)
	if c.check {
		if err := check(c, svcs); err != nil {
			log.Fatalf("check: %v", err)
		}
		fmt.Println("gencluster: check passed: clusterdns's parser accepts the manifests and derives exactly the zone file's records")
	}
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func writeFile(name string, fill func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := fill(w); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	return f.Close()
}

func nsName(i int) string { return fmt.Sprintf("ns-%02d", i) }

// model builds the cluster: services spread evenly over namespaces,
// every (services/headless)-th one headless so both kinds are in every
// namespace. ClusterIPs come from 10.96.0.0/12, endpoint IPs from
// 10.244.0.0/14.
func model(c config) []*service {
	svcs := make([]*service, 0, c.services)
	every := 0
	if c.headless > 0 {
		every = c.services / c.headless
	}
	headlessLeft := c.headless
	epIdx := 0
	for i := range c.services {
		// i + i/namespaces rather than i: every namespace gets both kinds.
		s := &service{ns: nsName((i + i/c.namespaces) % c.namespaces)}
		if headlessLeft > 0 && (i%every == every-1 || c.services-i == headlessLeft) {
			headlessLeft--
			s.headless = true
			s.name = fmt.Sprintf("hl-%05d", i)
			s.ports = []port{{"http", "TCP", 8080}, {"grpc", "TCP", 9090}}
			for j := range c.endpoints {
				epIdx++
				s.endpoints = append(s.endpoints, endpoint{
					hostname: fmt.Sprintf("%s-%d", s.name, j),
					ip:       addr(10<<24|244<<16, epIdx),
				})
			}
		} else {
			s.name = fmt.Sprintf("svc-%05d", i)
			s.clusterIP = addr(10<<24|96<<16, i+10)
			s.ports = []port{{"http", "TCP", 80}}
		}
		svcs = append(svcs, s)
	}
	return svcs
}

func addr(base uint32, off int) netip.Addr {
	v := base + uint32(off)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// writeYAML writes the manifests in the shape of `kubectl get -o yaml`.
func writeYAML(w io.Writer, c config, svcs []*service) error {
	fmt.Fprintf(w, "# Generated by bench/gencluster: %d services in %d namespaces.\n", len(svcs), c.namespaces)
	// In a List every object is an item indented by two; documents are not.
	ind := ""
	sep := func() { fmt.Fprintln(w, "---") }
	if c.list {
		fmt.Fprintln(w, "apiVersion: v1\nkind: List\nitems:")
		ind = "  "
		sep = func() {}
	}
	obj := func(lines ...string) {
		sep()
		for i, l := range lines {
			switch {
			case !c.list:
				fmt.Fprintln(w, l)
			case i == 0:
				fmt.Fprintln(w, "- "+l)
			default:
				fmt.Fprintln(w, ind+l)
			}
		}
	}
	for i := range c.namespaces {
		obj("apiVersion: v1", "kind: Namespace", "metadata:", "  name: "+nsName(i))
	}
	for _, s := range svcs {
		lines := []string{
			"apiVersion: v1", "kind: Service", "metadata:",
			"  name: " + s.name, "  namespace: " + s.ns,
			"  labels:", "    app: " + s.name,
			"spec:", "  type: ClusterIP",
		}
		if s.headless {
			lines = append(lines, "  clusterIP: None", "  clusterIPs: [None]")
		} else {
			lines = append(lines, "  clusterIP: "+s.clusterIP.String(), "  clusterIPs: ["+s.clusterIP.String()+"]")
		}
		lines = append(lines, "  selector:", "    app: "+s.name, "  ports:")
		for _, p := range s.ports {
			target := p.port
			if !s.headless {
				target = 8080
			}
			lines = append(lines,
				"  - name: "+p.name, "    protocol: "+p.proto,
				fmt.Sprintf("    port: %d", p.port), fmt.Sprintf("    targetPort: %d", target))
		}
		obj(lines...)
		if !s.headless {
			continue
		}
		lines = []string{
			"apiVersion: discovery.k8s.io/v1", "kind: EndpointSlice", "metadata:",
			"  name: " + s.name + "-x7k2p", "  namespace: " + s.ns,
			"  labels:", "    kubernetes.io/service-name: " + s.name,
			"addressType: IPv4", "ports:",
		}
		for _, p := range s.ports {
			lines = append(lines, "- name: "+p.name, "  protocol: "+p.proto, fmt.Sprintf("  port: %d", p.port))
		}
		lines = append(lines, "endpoints:")
		for j, e := range s.endpoints {
			lines = append(lines,
				"- addresses: ["+e.ip.String()+"]",
				"  conditions: {ready: true, serving: true, terminating: false}",
				"  hostname: "+e.hostname,
				fmt.Sprintf("  nodeName: node-%d", j%3),
				"  targetRef: {kind: Pod, name: "+e.hostname+", namespace: "+s.ns+"}")
		}
		obj(lines...)
	}
	return nil
}

// zoneRecords returns every record of the zone below the apex in
// presentation format, owner names fully qualified, TTL 5.
func zoneRecords(svcs []*service) []string {
	var rr []string
	add := func(owner, typ, rdata string) {
		rr = append(rr, fmt.Sprintf("%s\t%d\tIN\t%s\t%s", owner, ttl, typ, rdata))
	}
	for _, s := range svcs {
		if !s.headless {
			add(s.fqdn(), "A", s.clusterIP.String())
			for _, p := range s.ports {
				add(srvOwner(p, s), "SRV", fmt.Sprintf("0 100 %d %s", p.port, s.fqdn()))
			}
			continue
		}
		for _, e := range s.endpoints {
			add(s.fqdn(), "A", e.ip.String())
			add(e.hostname+"."+s.fqdn(), "A", e.ip.String())
		}
		for _, p := range s.ports {
			for _, e := range s.endpoints {
				add(srvOwner(p, s), "SRV", fmt.Sprintf("0 100 %d %s", p.port, e.hostname+"."+s.fqdn()))
			}
		}
	}
	return rr
}

func srvOwner(p port, s *service) string {
	return "_" + p.name + "._" + strings.ToLower(p.proto) + "." + s.fqdn()
}

func writeZone(w io.Writer, svcs []*service) error {
	fmt.Fprintf(w, "; Generated by bench/gencluster: the records clusterdns serves for the same cluster.\n")
	fmt.Fprintf(w, "$ORIGIN %s.\n$TTL %d\n", zone, ttl)
	fmt.Fprintf(w, "%s.\t%d\tIN\tSOA\t%s\n", zone, ttl, soaRData)
	fmt.Fprintf(w, "%s.\t%d\tIN\tNS\t%s\n", zone, ttl, nsRData)
	fmt.Fprintf(w, "dns-version.%s.\t%d\tIN\tTXT\t\"1.1.0\"\n", zone, ttl)
	for _, r := range zoneRecords(svcs) {
		if _, err := fmt.Fprintln(w, r); err != nil {
			return err
		}
	}
	return nil
}

// writeQueries writes the dnsperf input, randomly interleaved with a fixed
// seed: 70% A of a ClusterIP service, 10% SRV of any service (one of its
// named ports), 10% A of a headless service, 10% names that do not exist.
func writeQueries(w io.Writer, c config, svcs []*service) error {
	var clusterIP, headless []*service
	for _, s := range svcs {
		if s.headless {
			headless = append(headless, s)
		} else {
			clusterIP = append(clusterIP, s)
		}
	}
	r := rand.New(rand.NewPCG(c.seed, c.seed^0x9e3779b97f4a7c15))
	pick := func(l []*service) *service { return l[r.IntN(len(l))] }
	if len(headless) == 0 {
		headless = clusterIP
	}
	if len(clusterIP) == 0 {
		clusterIP = headless
	}
	for range c.queries {
		var err error
		switch n := r.IntN(100); {
		case n < 70:
			_, err = fmt.Fprintf(w, "%s A\n", pick(clusterIP).fqdn())
		case n < 80:
			s := svcs[r.IntN(len(svcs))]
			p := s.ports[r.IntN(len(s.ports))]
			_, err = fmt.Fprintf(w, "%s SRV\n", srvOwner(p, s))
		case n < 90:
			_, err = fmt.Fprintf(w, "%s A\n", pick(headless).fqdn())
		default:
			_, err = fmt.Fprintf(w, "%s A\n", nxName(r, c, svcs))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// nxName returns a name that does not exist (NXDOMAIN, not NODATA): a
// missing service in an existing namespace, an existing service name in a
// namespace that does not exist, an external name completed with a pod's
// search path, or a missing hostname under a headless service.
func nxName(r *rand.Rand, c config, svcs []*service) string {
	switch n := r.IntN(10); {
	case n < 4:
		return fmt.Sprintf("missing-%06d.%s.svc.%s.", r.IntN(1000000), nsName(r.IntN(c.namespaces)), zone)
	case n < 7:
		return fmt.Sprintf("%s.nons-%02d.svc.%s.", svcs[r.IntN(len(svcs))].name, r.IntN(100), zone)
	default:
		s := svcs[r.IntN(len(svcs))]
		if !s.headless {
			// What a pod's search path makes of an external name.
			return fmt.Sprintf("api-%d.example.com.%s.svc.%s.", r.IntN(1000), s.ns, zone)
		}
		return fmt.Sprintf("%s-%d.%s", s.name, len(s.endpoints)+r.IntN(100), s.fqdn())
	}
}

// writeSamples writes the names run.sh checks against both servers before
// measuring, with the number of answer and additional records expected.
func writeSamples(w io.Writer, svcs []*service) error {
	var ci, hl *service
	for _, s := range svcs {
		if s.headless && hl == nil {
			hl = s
		}
		if !s.headless && ci == nil {
			ci = s
		}
	}
	if ci == nil || hl == nil {
		return errors.New("samples need at least one ClusterIP and one headless service")
	}
	n := len(hl.endpoints)
	fmt.Fprintf(w, "# name type expected-answers expected-additional expected-rcode\n")
	fmt.Fprintf(w, "SAMPLES=(\n")
	fmt.Fprintf(w, "  '%s A 1 0 NOERROR'\n", ci.fqdn())
	fmt.Fprintf(w, "  '%s SRV 1 1 NOERROR'\n", srvOwner(ci.ports[0], ci))
	fmt.Fprintf(w, "  '%s A %d 0 NOERROR'\n", hl.fqdn(), n)
	fmt.Fprintf(w, "  '%s SRV %d %d NOERROR'\n", srvOwner(hl.ports[0], hl), n, n)
	fmt.Fprintf(w, "  '%s A 1 0 NOERROR'\n", hl.endpoints[0].hostname+"."+hl.fqdn())
	fmt.Fprintf(w, "  'missing-000001.%s.svc.%s. A 0 0 NXDOMAIN'\n", ci.ns, zone)
	fmt.Fprintf(w, "  '%s.nons-01.svc.%s. A 0 0 NXDOMAIN'\n", ci.name, zone)
	fmt.Fprintf(w, "  '%s-%d.%s A 0 0 NXDOMAIN'\n", hl.name, n+5, hl.fqdn())
	fmt.Fprintf(w, "  'api-1.example.com.%s.svc.%s. A 0 0 NXDOMAIN'\n", ci.ns, zone)
	fmt.Fprintf(w, ")\n")
	return nil
}

// check loads the manifests the way clusterdns does and compares the records
// its snapshot implies with the zone file's.
func check(c config, svcs []*service) error {
	store := registry.NewStore(registry.Options{Logger: slog.New(slog.DiscardHandler)})
	dir := filepath.Join(c.out, "zones")
	src := registry.NewFileSource(os.DirFS(dir), "", store, slog.New(slog.DiscardHandler))
	if err := src.Load(); err != nil {
		return fmt.Errorf("clusterdns's parser refuses %s: %w", dir, err)
	}
	snap := store.Snapshot()
	if snap == nil {
		return errors.New("no snapshot after loading")
	}
	if got := snap.ServiceCount(); got != len(svcs) {
		return fmt.Errorf("snapshot has %d services, want %d", got, len(svcs))
	}
	var got []string
	add := func(owner, typ, rdata string) {
		got = append(got, fmt.Sprintf("%s\t%d\tIN\t%s\t%s", owner, ttl, typ, rdata))
	}
	for e := range snap.Services() {
		fqdn := e.Name + "." + e.Namespace + ".svc." + zone + "."
		switch e.Kind {
		case registry.KindClusterIP:
			for _, ip := range e.ClusterIPs {
				add(fqdn, "A", ip.String())
			}
			for _, p := range e.Ports {
				if p.Name != "" {
					add("_"+p.Name+"._"+strings.ToLower(string(p.Protocol))+"."+fqdn, "SRV", fmt.Sprintf("0 100 %d %s", p.Port, fqdn))
				}
			}
		case registry.KindHeadless:
			for i := range e.Endpoints {
				ep := &e.Endpoints[i]
				if !e.Published(ep) {
					continue
				}
				add(fqdn, "A", ep.Address.String())
				add(ep.DNSName+"."+fqdn, "A", ep.Address.String())
				for _, p := range ep.Ports() {
					if p.Name != "" {
						add("_"+p.Name+"._"+strings.ToLower(string(p.Protocol))+"."+fqdn, "SRV",
							fmt.Sprintf("0 100 %d %s", p.Port, ep.DNSName+"."+fqdn))
					}
				}
			}
		default:
			return fmt.Errorf("service %s: unexpected kind %v", e.Key, e.Kind)
		}
	}
	want := zoneRecords(svcs)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("records from the snapshot (%d) differ from the zone file (%d): %s", len(got), len(want), firstDiff(got, want))
	}
	return nil
}

func firstDiff(got, want []string) string {
	gs, ws := map[string]bool{}, map[string]bool{}
	for _, g := range got {
		gs[g] = true
	}
	for _, w := range want {
		ws[w] = true
	}
	for _, w := range want {
		if !gs[w] {
			return "missing from the snapshot: " + w
		}
	}
	for _, g := range got {
		if !ws[g] {
			return "not in the zone file: " + g
		}
	}
	return "duplicates differ"
}
