// Command nodeproxy makes Service virtual IPs routable on the node it runs
// on: it watches the same cluster model as clusterdns (the Kubernetes API
// with a kubeconfig or in a pod, else the cluster files, the embedded
// example by default) and writes nftables rules that DNAT
// ClusterIPs and NodePorts to endpoints. `nodeproxy --cleanup` removes its
// table and exits. Run `nodeproxy --help` for the flags; it needs
// CAP_NET_ADMIN and the nft (and conntrack) tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/knftables"

	"github.com/clusterdns/clusterdns/internal/pages"
	"github.com/clusterdns/clusterdns/nodeproxy"
	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/zones"
)

type config struct {
	Source        string
	Kubeconfig    string
	ZonesDir      string
	Table         string
	NodeName      string
	MasqueradeBit int
	MinInterval   time.Duration
	FullInterval  time.Duration
	MetricsAddr   string
	HealthzAddr   string
	ClusterCIDRs  []netip.Prefix
	NodePortAddrs string // "", "primary" or CIDRs
	NodeZone      string
	NodeIPs       []netip.Addr
	Conntrack     string
	Cleanup       bool
	// NetlinkElements writes set and map elements over netlink (--netlink-elements).
	NetlinkElements bool
	LogLevel        slog.Level
	GCPercent       int
}

func parseFlags(args []string) (*config, error) {
	cfg := &config{}
	host, _ := os.Hostname()
	fl := flag.NewFlagSet("nodeproxy", flag.ContinueOnError)
	fl.StringVar(&cfg.Source, "source", "auto", "where the cluster comes from: auto (the Kubernetes API when a kubeconfig is given, $KUBECONFIG is set or in a pod; else files), kubernetes or files")
	fl.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig file for the Kubernetes API; empty uses $KUBECONFIG, else the in-cluster service account")
	fl.StringVar(&cfg.ZonesDir, "zones-dir", "", "folder of cluster manifests to watch (default: the embedded example cluster)")
	fl.StringVar(&cfg.Table, "table", nodeproxy.DefaultTable, "name of the node proxy's nftables table (family inet)")
	fl.StringVar(&cfg.NodeName, "node-name", host, "this node's name, for externalTrafficPolicy: Local")
	fl.IntVar(&cfg.MasqueradeBit, "masquerade-bit", 14, "packet mark bit that asks for masquerading (0-31)")
	fl.DurationVar(&cfg.MinInterval, "min-sync-interval", 10*time.Millisecond, "minimum time between two rule syncs; changes in between are batched")
	fl.DurationVar(&cfg.FullInterval, "full-sync-interval", time.Hour, "rewrite the whole table this often (0: never)")
	fl.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address (/metrics); empty: off")
	fl.StringVar(&cfg.HealthzAddr, "healthz-addr", "0.0.0.0:10256", "serve /healthz and /livez (kube-proxy's meaning) on this address; empty: off")
	cidrs := fl.String("cluster-cidr", "", "comma-separated pod CIDRs: their traffic to a LoadBalancer IP or externalIP of an externalTrafficPolicy: Local service may use every endpoint, as kube-proxy's --cluster-cidr")
	fl.StringVar(&cfg.NodePortAddrs, "nodeport-addresses", "", "node addresses NodePorts answer on: comma-separated CIDRs, or \"primary\" (the node's own IPs: --node-ip, else its Node's InternalIPs); empty: every local address but loopback")
	fl.StringVar(&cfg.NodeZone, "node-zone", "", "this node's topology zone for EndpointSlice zone hints; empty: the topology.kubernetes.io/zone label of the Node (Kubernetes source)")
	nodeIPs := fl.String("node-ip", "", "comma-separated IPs of this node, for --nodeport-addresses=primary; empty: the Node's InternalIPs (Kubernetes source)")
	fl.StringVar(&cfg.Conntrack, "conntrack", "conntrack", "the conntrack tool, used to delete stale UDP flows; empty: never")
	fl.BoolVar(&cfg.Cleanup, "cleanup", false, "remove everything the node proxy wrote and exit")
	fl.BoolVar(&cfg.NetlinkElements, "netlink-elements", true, "write the elements of the shared sets and maps (service addresses, endpoints) over netlink in one batch, the chains and sets through nft; false: everything through nft")
	fl.IntVar(&cfg.GCPercent, "gc-percent", 10, "Go GC target percentage (GOGC) from the first full sync on (before it and during every full sync: 100): the heap is then mostly the long-lived cluster model and a sync allocates little, so a low value keeps the resident size near it at little CPU cost; 0: Go's default throughout; the GOGC environment variable overrides it")
	level := fl.String("log-level", "info", "debug, info, warn or error")
	var err error
	if err = fl.Parse(args); err != nil {
		return nil, err
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	switch cfg.Source {
	case "auto", "files", "kubernetes":
	default:
		return nil, fmt.Errorf("--source %q: not auto, files or kubernetes", cfg.Source)
	}
	if cfg.ClusterCIDRs, err = parsePrefixes(*cidrs); err != nil {
		return nil, fmt.Errorf("--cluster-cidr: %w", err)
	}
	if cfg.NodePortAddrs != "" && cfg.NodePortAddrs != "primary" {
		if _, err := parsePrefixes(cfg.NodePortAddrs); err != nil {
			return nil, fmt.Errorf("--nodeport-addresses: %w", err)
		}
	}
	for _, s := range splitList(*nodeIPs) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("--node-ip: %w", err)
		}
		cfg.NodeIPs = append(cfg.NodeIPs, a.Unmap())
	}
	if cfg.MasqueradeBit < 0 || cfg.MasqueradeBit > 31 {
		return nil, fmt.Errorf("--masquerade-bit %d: not in 0-31", cfg.MasqueradeBit)
	}
	return cfg, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodeproxy:", err)
		os.Exit(2)
	}
	if os.Getenv("GOGC") != "" {
		cfg.GCPercent = 0 // the environment decides, for the whole run
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if err := run(ctx, cfg, log); err != nil {
		log.Error("nodeproxy failed", "err", err)
		os.Exit(1)
	}
}

// run builds the store, its source, the tracker, the proxier and the
// metrics server, and syncs rules until ctx ends. The rules stay in place
// when it returns (a restart resyncs them); --cleanup removes them.
func run(ctx context.Context, cfg *config, log *slog.Logger) error {
	nft, err := knftables.New(knftables.InetFamily, cfg.Table)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if cfg.Cleanup {
		if err := nodeproxy.Cleanup(ctx, nft); err != nil {
			return err
		}
		log.Info("nftables table removed", "table", cfg.Table)
		return nil
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := nodeproxy.NewMetrics(reg)
	if err != nil {
		return err
	}
	if cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", "err", err)
			}
		}()
		defer srv.Close()
		log.Info("serving metrics", "addr", ln.Addr().String())
	}

	health := nodeproxy.NewProxyHealth(nodeproxy.DefaultHealthTimeout)
	if cfg.HealthzAddr != "" {
		ln, err := net.Listen("tcp", cfg.HealthzAddr)
		if err != nil {
			return fmt.Errorf("healthz listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/healthz", health)
		mux.Handle("/livez", health)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("healthz server", "err", err)
			}
		}()
		defer srv.Close()
		log.Info("serving /healthz and /livez", "addr", ln.Addr().String())
	}

	rc, from, err := kubeRESTConfig(cfg)
	if err != nil {
		return err
	}
	// The Node: its zone label for topology hints, its addresses for
	// --nodeport-addresses=primary (flags override both), whether it is
	// being deleted (for /healthz).
	zone, nodeIPs := cfg.NodeZone, cfg.NodeIPs
	if rc != nil {
		info, err := fetchNode(ctx, rc, cfg.NodeName)
		if err != nil {
			log.Warn("Node not read: no zone for topology hints", "node", cfg.NodeName, "err", err)
		} else {
			health.SetNodeEligible(info.Eligible)
		}
		if zone == "" {
			zone = info.Zone
		}
		if len(nodeIPs) == 0 {
			nodeIPs = info.IPs
		}
	}
	var nodePortAddrs []netip.Prefix
	switch cfg.NodePortAddrs {
	case "":
	case "primary":
		if len(nodeIPs) == 0 {
			return fmt.Errorf("--nodeport-addresses=primary: the node's IPs are unknown (give --node-ip)")
		}
		for _, a := range nodeIPs {
			nodePortAddrs = append(nodePortAddrs, netip.PrefixFrom(a, a.BitLen()))
		}
	default:
		nodePortAddrs, _ = parsePrefixes(cfg.NodePortAddrs)
	}

	// No DNS labels: the node proxy reads endpoints' addresses, not names.
	store := registry.NewStore(registry.Options{Logger: log, NoDNSLabels: true})
	tracker := nodeproxy.NewTracker(metrics)
	tracker.ReportTo(health)
	store.Subscribe(tracker.OnSnapshot)
	var ct nodeproxy.Conntrack
	if cfg.Conntrack != "" {
		ct = nodeproxy.ConntrackTool{Path: cfg.Conntrack}
	}
	serviceHealth := nodeproxy.NewServiceHealth(log, health)
	defer serviceHealth.Close(context.Background())
	var elems nodeproxy.ElementWriter
	if cfg.NetlinkElements {
		nl, err := nodeproxy.NewNetlinkElements(cfg.Table)
		if err != nil {
			return err
		}
		defer nl.Close()
		elems = nl
	}
	proxier := nodeproxy.NewProxier(nodeproxy.ProxierConfig{
		NFT: nft, Conntrack: ct, Elements: elems,
		NewNFT: func() (knftables.Interface, error) { return knftables.New(knftables.InetFamily, cfg.Table) }, NodeName: cfg.NodeName, Zone: zone,
		ClusterCIDRs: cfg.ClusterCIDRs, NodePortAddresses: nodePortAddrs, Health: serviceHealth,
		MasqueradeBit: cfg.MasqueradeBit, Metrics: metrics, Logger: log,
		ReleaseStartupPages: true, GCPercent: cfg.GCPercent,
		// The garbage of partial syncs goes back to the OS once they
		// settle, as clusterdns does after its index builds.
		Trimmer: pages.NewSettleTrimmer(time.Second, 10*time.Second, debug.FreeOSMemory),
	})
	if rc != nil {
		go followNode(ctx, log, rc, cfg.NodeName, zone, cfg.NodeZone != "", proxier, tracker, health)
	}

	if rc != nil {
		client, err := registry.NewKubeAPI(rc)
		if err != nil {
			return err
		}
		// No sync timeout: until the first full view no rule is written,
		// and the rules of a previous run stay in place.
		// ClusterSet: ClusterSetIP ServiceImports are routed too (a missing
		// CRD is logged once and the rest is served).
		kube := registry.NewKubeSource(client, store, registry.KubeOptions{Logger: log, ClusterSet: true})
		go func() {
			if err := kube.Run(ctx); err != nil {
				log.Error("Kubernetes source stopped", "err", err)
			}
		}()
		log.Info("watching the Kubernetes API", "from", from)
	} else {
		var fsys fs.FS = zones.Default
		if cfg.ZonesDir != "" {
			if st, err := os.Stat(cfg.ZonesDir); err != nil || !st.IsDir() {
				return fmt.Errorf("--zones-dir %q: not a readable folder", cfg.ZonesDir)
			}
			fsys = os.DirFS(cfg.ZonesDir)
		}
		files := registry.NewFileSource(fsys, cfg.ZonesDir, store, log)
		if err := files.Load(); err != nil {
			log.Error("cluster file refused", "err", err)
		}
		go func() {
			if err := files.Watch(ctx); err != nil {
				log.Error("watching cluster files", "err", err)
			}
		}()
	}

	runner := &nodeproxy.Runner{
		Tracker: tracker, Proxier: proxier, Logger: log, Health: health,
		MinInterval: cfg.MinInterval, FullInterval: cfg.FullInterval,
	}
	log.Info("node proxy running", "table", cfg.Table, "node", cfg.NodeName, "zone", zone,
		"clusterCIDRs", cfg.ClusterCIDRs, "nodePortAddresses", nodePortAddrs)
	return runner.Run(ctx)
}

// kubeRESTConfig decides where the cluster comes from, as clusterdns does
// (registry.KubeRESTConfig).
func kubeRESTConfig(cfg *config) (*rest.Config, string, error) {
	return registry.KubeRESTConfig(cfg.Source, cfg.Kubeconfig, "clusterdns-nodeproxy")
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parsePrefixes parses a comma-separated list of CIDRs.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range splitList(s) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
