package main

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/server"
)

// config is the validated configuration. Strength: flag > environment
// (CLUSTERDNS_<KEY>) > file (--config) > default.
type config struct {
	Listen           string
	ZonesDir         string
	Domains          []string
	TTL              uint32
	NegativeTTL      uint32
	Pods             server.PodMode
	EndpointPodNames bool
	DNSService       registry.Key
	UDPSockets       int
	LogLevel         slog.Level
	LogFormat        string

	// The Kubernetes source and the health endpoints.
	Source        string // sourceAuto, sourceKubernetes or sourceFiles
	Kubeconfig    string
	Namespaces    []string // empty: all
	SyncTimeout   time.Duration
	HealthListen  string // "" disables the health endpoints
	MetricsListen string // "" disables /metrics
	Pprof         bool
	LameDuck      time.Duration
	AnswerOrder   string
	ZoneOrder     map[string]string

	// Forwarding (names outside the served zones).
	Upstreams      []string            // empty: no forwarding (REFUSED)
	StubDomains    map[string][]string // domain → servers
	UpstreamPolicy resolver.Policy
	ForwardTimeout time.Duration
	RecursionFrom  []netip.Prefix
	CacheSize      int
	CacheMaxTTL    time.Duration
	CacheMaxNegTTL time.Duration
	ServeStale     time.Duration
	Prefetch       int
	Autopath       bool
	QueryLog       bool
	QueryLogSample int

	// Limits under load and hostile input.
	MaxTCPConns        int           // concurrent TCP connections
	TCPIdleTimeout     time.Duration // a TCP connection silent this long is closed
	MaxForwardInFlight int           // forwarded queries at once; beyond: SERVFAIL
	RRL                server.RRLOptions
	TransferFrom       []netip.Prefix // clients allowed to ask AXFR/IXFR (not implemented: NOTIMP)
	// MemoryLimit is the Go runtime's soft memory limit in bytes
	// (debug.SetMemoryLimit); -1 leaves it to $GOMEMLIMIT.
	MemoryLimit int64
}

// Where the cluster comes from (key source).
const (
	sourceAuto       = "auto"
	sourceKubernetes = "kubernetes"
	sourceFiles      = "files"
)

// defaultHealthListen is the default of health_listen. When this default
// cannot be bound the server runs without the endpoints (and says so); an
// address set by the user must bind.
const defaultHealthListen = "127.0.0.1:8080"

// defaultMetricsListen is the default of metrics_listen; like the health
// default, a server that cannot bind it serves without metrics.
const defaultMetricsListen = "127.0.0.1:9153"

// setting is one configuration key: its flag, default and help.
type setting struct {
	key, help string
	def       any
}

var settings = []setting{
	{"listen", "address for DNS over UDP and TCP (host:port)", "127.0.0.1:5353"},
	{"zones_dir", "folder of cluster manifests (*.yaml) and zone files (*.zone), watched for changes; empty serves the embedded example cluster; with the Kubernetes source only its zone files are read", ""},
	{"domains", "cluster domains served (comma-separated)", []string{"cluster.local"}},
	{"ttl", "TTL of cluster records, seconds (0-3600)", 5},
	{"negative_ttl", "TTL of negative answers (the SOA minimum), seconds (0-3600)", 5},
	{"pods", "pod records a-b-c-d.<ns>.pod.<zone>: disabled, insecure or verified", "disabled"},
	{"endpoint_pod_names", "name endpoints without a hostname after their pod instead of their address", false},
	{"dns_service", "namespace/name of the service whose ClusterIP is the zones' NS address", "kube-system/kube-dns"},
	{"udp_sockets", "UDP sockets (SO_REUSEPORT), one reader each; 0 = one per CPU", 0},
	{"upstreams", "servers for names outside the served zones: ip, ip:port, tcp://ip:port, or a resolv.conf path; empty turns forwarding off (REFUSED)", []string{"/etc/resolv.conf"}},
	{"stub_domains", "per-domain servers, domain=ip[;ip...] (in the file: a map of domain to a list)", []string{}},
	{"upstream_policy", "order of upstreams: random, round_robin or sequential", "random"},
	{"forward_timeout", "timeout of one upstream exchange", "2s"},
	{"recursion_from", "client networks allowed to ask names outside the served zones", []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10"}},
	{"cache_size", "forwarded answers cached at most", 10000},
	{"cache_max_ttl", "longest time a forwarded answer is cached", "1h"},
	{"cache_max_negative_ttl", "longest time a forwarded NXDOMAIN/NODATA is cached", "30m"},
	{"serve_stale", "how long an expired answer may be served when every upstream fails (RFC 8767); 0 turns it off", "1h"},
	{"prefetch", "refresh a popular cached answer in the last N percent of its TTL; 0 turns it off", 10},
	{"autopath", "complete pods' search paths on the server (needs pods known by IP)", false},
	{"query_log", "log every query received (client, name, type)", false},
	{"query_log_sample", "with query_log, log one query in N", 1},
	{"answer_order", "order of a name's A/AAAA records per query: round_robin, random or off", "round_robin"},
	{"answer_order_zones", "per-zone answer order, zone=policy (\".\" for forwarded answers)", []string{}},
	{"metrics_listen", "address of the Prometheus /metrics endpoint (host:port); empty disables it", defaultMetricsListen},
	{"pprof", "serve /debug/pprof/ on the metrics address", false},
	{"lame_duck", "after SIGTERM, keep answering this long while /ready fails, then close", "5s"},
	{"log_level", "debug, info, warn or error", "info"},
	{"log_format", "text or json", "text"},
	{"source", "where the cluster comes from: auto (the Kubernetes API when a kubeconfig is given, $KUBECONFIG is set or clusterdns runs in a pod; else files), kubernetes or files", sourceAuto},
	{"kubeconfig", "kubeconfig file for the Kubernetes API; empty uses $KUBECONFIG, else the in-cluster service account", ""},
	{"namespaces", "serve only these namespaces (comma-separated; Kubernetes source); empty serves all", []string{}},
	{"sync_timeout", "longest wait for the first full view of the cluster (Kubernetes source), during which cluster names answer SERVFAIL; then what is loaded is served; 0 waits for ever", "30s"},
	{"health_listen", "address of the HTTP endpoints /healthz and /ready (host:port); empty disables them", defaultHealthListen},
	{"max_tcp_conns", "concurrent DNS-over-TCP connections at most; more are closed at once", 1024},
	{"tcp_idle_timeout", "a TCP connection that sends no complete query for this long is closed", "10s"},
	{"max_forward_in_flight", "forwarded queries waiting for an upstream at most; beyond, SERVFAIL", 1000},
	{"rrl_responses_per_second", "response rate limiting on UDP: responses per second per client network (/24, /56) and answer; 0 turns it off", 0},
	{"rrl_slip", "with rate limiting, every Nth response over the limit is sent truncated (TC=1) instead of dropped; 0 drops them all", 2},
	{"rrl_window", "with rate limiting, how long a client that went over the limit stays limited at most", "15s"},
	{"transfer_from", "client networks allowed to ask zone transfers (AXFR/IXFR, not implemented: NOTIMP); others get REFUSED", []string{}},
	{"memory_limit", "soft memory limit of the Go runtime, such as 100MiB (the garbage collector works harder near it); 0 removes it; empty leaves it to $GOMEMLIMIT", ""},
}

func flagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

// loadConfig reads flags (args), the environment and the config file. A bad
// value or an unknown key in the file is an error that names it.
func loadConfig(args []string) (*config, error) {
	fs := pflag.NewFlagSet("clusterdns", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {}
	cfgFile := fs.String("config", "", "YAML configuration file (keys as below, with underscores)")
	for _, s := range settings {
		help := fmt.Sprintf("%s (env CLUSTERDNS_%s)", s.help, strings.ToUpper(s.key))
		switch d := s.def.(type) {
		case string:
			fs.String(flagName(s.key), d, help)
		case int:
			fs.Int(flagName(s.key), d, help)
		case bool:
			fs.Bool(flagName(s.key), d, help)
		case []string:
			fs.StringSlice(flagName(s.key), d, help)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Printf("clusterdns: DNS for Kubernetes-style clusters (cluster.local)\n\nUsage: clusterdns [flags]\n\n%s", fs.FlagUsages())
		}
		return nil, err
	}
	v := viper.New()
	for _, s := range settings {
		v.SetDefault(s.key, s.def)
		if err := v.BindPFlag(s.key, fs.Lookup(flagName(s.key))); err != nil {
			return nil, fmt.Errorf("flag %s: %w", s.key, err)
		}
	}
	v.SetEnvPrefix("CLUSTERDNS")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if *cfgFile != "" {
		v.SetConfigFile(*cfgFile)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config file %s: %w", *cfgFile, err)
		}
		file := viper.New()
		file.SetConfigFile(*cfgFile)
		if err := file.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config file %s: %w", *cfgFile, err)
		}
		// Top-level keys only: values such as stub_domains are maps whose
		// keys (domain names) hold dots, which viper would split.
		for k := range file.AllSettings() {
			if !slices.ContainsFunc(settings, func(s setting) bool { return s.key == k }) {
				return nil, fmt.Errorf("config file %s: unknown key %q", *cfgFile, k)
			}
		}
	}
	return parseConfig(v)
}

func parseConfig(v *viper.Viper) (*config, error) {
	c := &config{
		Listen:           v.GetString("listen"),
		ZonesDir:         v.GetString("zones_dir"),
		Pods:             server.PodMode(v.GetString("pods")),
		EndpointPodNames: v.GetBool("endpoint_pod_names"),
		LogFormat:        v.GetString("log_format"),
		Source:           v.GetString("source"),
		Kubeconfig:       v.GetString("kubeconfig"),
		HealthListen:     v.GetString("health_listen"),
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return nil, fmt.Errorf("listen %q: want host:port: %w", c.Listen, err)
	}
	for _, d := range v.GetStringSlice("domains") {
		for _, part := range strings.Split(d, ",") {
			if part = strings.TrimSpace(part); part != "" {
				c.Domains = append(c.Domains, part)
			}
		}
	}
	if len(c.Domains) == 0 {
		return nil, fmt.Errorf("domains: at least one cluster domain is needed")
	}
	var err error
	if c.TTL, err = ttlValue(v, "ttl"); err != nil {
		return nil, err
	}
	if c.NegativeTTL, err = ttlValue(v, "negative_ttl"); err != nil {
		return nil, err
	}
	switch c.Pods {
	case server.PodsDisabled, server.PodsInsecure, server.PodsVerified:
	default:
		return nil, fmt.Errorf("pods %q: want disabled, insecure or verified", c.Pods)
	}
	ns, name, ok := strings.Cut(v.GetString("dns_service"), "/")
	if !ok || ns == "" || name == "" {
		return nil, fmt.Errorf("dns_service %q: want namespace/name", v.GetString("dns_service"))
	}
	c.DNSService = registry.Key{Namespace: ns, Name: name}
	if c.UDPSockets, err = intValue(v, "udp_sockets", 0, 1024); err != nil {
		return nil, err
	}
	if err := c.LogLevel.UnmarshalText([]byte(v.GetString("log_level"))); err != nil {
		return nil, fmt.Errorf("log_level %q: want debug, info, warn or error", v.GetString("log_level"))
	}
	if err := parseForwarding(v, c); err != nil {
		return nil, err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return nil, fmt.Errorf("log_format %q: want text or json", c.LogFormat)
	}
	switch c.Source {
	case sourceAuto, sourceKubernetes, sourceFiles:
	default:
		return nil, fmt.Errorf("source %q: want auto, kubernetes or files", c.Source)
	}
	for _, n := range v.GetStringSlice("namespaces") {
		for _, part := range strings.Split(n, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			if errs := validation.IsDNS1123Label(part); len(errs) > 0 {
				return nil, fmt.Errorf("namespaces: %q is not a namespace name: %s", part, strings.Join(errs, "; "))
			}
			if !slices.Contains(c.Namespaces, part) {
				c.Namespaces = append(c.Namespaces, part)
			}
		}
	}
	syncTimeout := v.GetString("sync_timeout")
	if c.SyncTimeout, err = time.ParseDuration(syncTimeout); err != nil || c.SyncTimeout < 0 {
		return nil, fmt.Errorf("sync_timeout %q: want a duration such as 30s or 2m, 0 to wait for ever", syncTimeout)
	}
	c.MetricsListen, c.Pprof = v.GetString("metrics_listen"), v.GetBool("pprof")
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return nil, fmt.Errorf("metrics_listen %q: want host:port, or empty to disable: %w", c.MetricsListen, err)
		}
	}
	if d, err := time.ParseDuration(v.GetString("lame_duck")); err != nil || d < 0 {
		return nil, fmt.Errorf("lame_duck %q: want a duration such as 5s", v.GetString("lame_duck"))
	} else {
		c.LameDuck = d
	}
	c.AnswerOrder = v.GetString("answer_order")
	c.ZoneOrder = map[string]string{}
	for _, e := range v.GetStringSlice("answer_order_zones") {
		zone, pol, ok := strings.Cut(e, "=")
		if !ok || zone == "" {
			return nil, fmt.Errorf("answer_order_zones %q: want zone=policy", e)
		}
		c.ZoneOrder[zone] = pol
	}
	for _, pol := range append([]string{c.AnswerOrder}, slices.Collect(maps.Values(c.ZoneOrder))...) {
		if pol != "off" && pol != "round_robin" && pol != "random" {
			return nil, fmt.Errorf("answer order %q: want round_robin, random or off", pol)
		}
	}
	if c.HealthListen != "" {
		if _, _, err := net.SplitHostPort(c.HealthListen); err != nil {
			return nil, fmt.Errorf("health_listen %q: want host:port, or empty to disable: %w", c.HealthListen, err)
		}
	}
	if err := parseLimits(v, c); err != nil {
		return nil, err
	}
	return c, nil
}

// parseLimits reads the keys that bound the server under load and hostile
// input: TCP connections, forwarded queries in flight, response rate
// limiting and the zone transfer ACL.
func parseLimits(v *viper.Viper, c *config) error {
	var err error
	if c.MaxTCPConns, err = intValue(v, "max_tcp_conns", 1, 1_000_000); err != nil {
		return err
	}
	if c.MaxForwardInFlight, err = intValue(v, "max_forward_in_flight", 1, 1_000_000); err != nil {
		return err
	}
	if c.RRL.ResponsesPerSecond, err = intValue(v, "rrl_responses_per_second", 0, 1_000_000); err != nil {
		return err
	}
	if c.RRL.Slip, err = intValue(v, "rrl_slip", 0, 10); err != nil {
		return err
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{"tcp_idle_timeout", &c.TCPIdleTimeout}, {"rrl_window", &c.RRL.Window}} {
		s := v.GetString(d.key)
		if *d.dst, err = time.ParseDuration(s); err != nil || *d.dst < time.Millisecond || *d.dst > time.Hour {
			return fmt.Errorf("%s %q: want a duration from 1ms to 1h, such as 10s", d.key, s)
		}
	}
	if c.MemoryLimit, err = memoryLimit(v.GetString("memory_limit")); err != nil {
		return err
	}
	for _, cidr := range v.GetStringSlice("transfer_from") {
		for _, part := range strings.Split(cidr, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			p, err := netip.ParsePrefix(part)
			if err != nil {
				return fmt.Errorf("transfer_from %q: want a network such as 10.0.0.0/8", part)
			}
			c.TransferFrom = append(c.TransferFrom, p)
		}
	}
	return nil
}

func ttlValue(v *viper.Viper, key string) (uint32, error) {
	n, err := intValue(v, key, 0, 3600)
	return uint32(n), err
}

func intValue(v *viper.Viper, key string, lo, hi int) (int, error) {
	raw := v.Get(key)
	n, err := toInt(raw)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s %v: want a whole number from %d to %d", key, raw, lo, hi)
	}
	return n, nil
}

func toInt(x any) (int, error) {
	switch t := x.(type) {
	case int:
		return t, nil
	case int64:
		return int(t), nil
	case float64:
		if t != float64(int(t)) {
			return 0, fmt.Errorf("not whole")
		}
		return int(t), nil
	case string:
		var n int
		_, err := fmt.Sscanf(strings.TrimSpace(t), "%d", &n)
		if err != nil || fmt.Sprint(n) != strings.TrimSpace(t) {
			return 0, fmt.Errorf("not a number")
		}
		return n, nil
	}
	return 0, fmt.Errorf("not a number")
}

func parseForwarding(v *viper.Viper, c *config) error {
	for _, u := range v.GetStringSlice("upstreams") {
		for _, part := range strings.Split(u, ",") {
			if part = strings.TrimSpace(part); part != "" {
				c.Upstreams = append(c.Upstreams, part)
			}
		}
	}
	c.StubDomains = map[string][]string{}
	switch raw := v.Get("stub_domains").(type) {
	case map[string]any:
		// viper splits keys at dots: corp.example arrives as corp → example.
		var walk func(prefix string, m map[string]any) error
		walk = func(prefix string, m map[string]any) error {
			for k, val := range m {
				name := strings.TrimPrefix(prefix+"."+k, ".")
				switch t := val.(type) {
				case map[string]any:
					if err := walk(name, t); err != nil {
						return err
					}
				case []any:
					for _, s := range t {
						c.StubDomains[name] = append(c.StubDomains[name], fmt.Sprint(s))
					}
				case string:
					c.StubDomains[name] = append(c.StubDomains[name], t)
				default:
					return fmt.Errorf("stub_domains %s: want a list of servers", name)
				}
			}
			return nil
		}
		if err := walk("", raw); err != nil {
			return err
		}
	default:
		for _, e := range v.GetStringSlice("stub_domains") {
			d, servers, ok := strings.Cut(e, "=")
			if !ok || d == "" || servers == "" {
				return fmt.Errorf("stub_domains %q: want domain=ip[;ip...]", e)
			}
			c.StubDomains[d] = append(c.StubDomains[d], strings.Split(servers, ";")...)
		}
	}
	c.UpstreamPolicy = resolver.Policy(v.GetString("upstream_policy"))
	switch c.UpstreamPolicy {
	case resolver.Random, resolver.RoundRobin, resolver.Sequential:
	default:
		return fmt.Errorf("upstream_policy %q: want random, round_robin or sequential", c.UpstreamPolicy)
	}
	var err error
	durations := []struct {
		key string
		dst *time.Duration
		min time.Duration
	}{
		{"forward_timeout", &c.ForwardTimeout, time.Millisecond},
		{"cache_max_ttl", &c.CacheMaxTTL, 0},
		{"cache_max_negative_ttl", &c.CacheMaxNegTTL, 0},
		{"serve_stale", &c.ServeStale, 0},
	}
	for _, d := range durations {
		s := v.GetString(d.key)
		if *d.dst, err = time.ParseDuration(s); err != nil || *d.dst < d.min {
			return fmt.Errorf("%s %q: want a duration such as 2s, 5m or 1h", d.key, s)
		}
	}
	for _, cidr := range v.GetStringSlice("recursion_from") {
		for _, part := range strings.Split(cidr, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			p, err := netip.ParsePrefix(part)
			if err != nil {
				return fmt.Errorf("recursion_from %q: want a network such as 10.0.0.0/8", part)
			}
			c.RecursionFrom = append(c.RecursionFrom, p)
		}
	}
	if c.CacheSize, err = intValue(v, "cache_size", 0, 10_000_000); err != nil {
		return err
	}
	if c.Prefetch, err = intValue(v, "prefetch", 0, 100); err != nil {
		return err
	}
	c.Autopath = v.GetBool("autopath")
	c.QueryLog = v.GetBool("query_log")
	if c.QueryLogSample, err = intValue(v, "query_log_sample", 1, 1_000_000); err != nil {
		return err
	}
	return nil
}

// memoryLimit reads a size in bytes with an optional unit (B, KiB, MiB,
// GiB, as GOMEMLIMIT takes them); "" is -1 (not set), "0" no limit.
func memoryLimit(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return -1, nil
	}
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult || (n > 0 && n*mult < 16<<20) {
		return 0, fmt.Errorf("memory_limit %q: want 0 or a size from 16MiB to 1024GiB, such as 100MiB", s)
	}
	if n == 0 {
		return math.MaxInt64, nil // what debug.SetMemoryLimit takes for no limit
	}
	return n * mult, nil
}
