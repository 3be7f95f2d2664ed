package app

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"reflect"
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

// Config is the validated configuration. Strength: flag > environment
// (CLUSTERDNS_<KEY>) > file (--config) > default. LoadConfig makes one.
type Config struct {
	args []string // the arguments it was read from: a reload reads them again

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

	// Names answered from hosts lines, and question rewrites (CoreDNS's
	// hosts and rewrite name).
	Hosts       server.HostsOptions
	RewriteName []string
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

// key is one configuration key (a row of keys).
type key struct {
	name string
	// def is the default, of the flag's type: string, int, bool or
	// []string.
	def any
	// shown is the default as the README shows it, when that is not def
	// in backticks (a default that depends on the machine, or a range).
	shown string
	// meaning says what the key does, in the README's words (markdown);
	// --help shows it without the backticks.
	meaning string
	// restart, set for a key only read at start, returns the value a
	// reload compares: a change is named in the log and not applied.
	restart func(c *Config) any
	// restartIf, for a key a reload applies only in some settings,
	// reports a change it cannot apply.
	restartIf func(old, next *Config) bool
	// parse reads the key from v, checks it and stores it in c; its error
	// names the key and what is wanted.
	parse func(v *viper.Viper, c *Config, name string) error
}

// help is the key's --help text.
func (k *key) help() string {
	h := strings.NewReplacer("`", "", `\|`, "|").Replace(k.meaning) + " (env CLUSTERDNS_" + strings.ToUpper(k.name)
	if k.restart != nil {
		h += "; read at start only"
	}
	return h + ")"
}

// defaultShown is the key's default as the README's table shows it.
func (k *key) defaultShown() string {
	switch d := k.def.(type) {
	case string:
		if k.shown == "" && d == "" {
			return ""
		}
	case []string:
		if k.shown == "" && len(d) == 0 {
			return ""
		}
		if k.shown == "" {
			return "`" + strings.Join(d, ",") + "`"
		}
	}
	if k.shown != "" {
		return k.shown
	}
	return fmt.Sprintf("`%v`", k.def)
}

func flagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

// LoadConfig reads flags (args, without the program name), the environment
// and the config file. A bad value or an unknown key in the file is an
// error that names it; --help prints the keys to stdout and returns
// pflag.ErrHelp. cmd/clusterdns calls it at start, the reload watcher on
// every change.
func LoadConfig(args []string) (*Config, error) {
	fs := pflag.NewFlagSet("clusterdns", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {}
	cfgFile := fs.String("config", "", "YAML configuration file (keys as below, with underscores)")
	for _, k := range keys {
		switch d := k.def.(type) {
		case string:
			fs.String(flagName(k.name), d, k.help())
		case int:
			fs.Int(flagName(k.name), d, k.help())
		case bool:
			fs.Bool(flagName(k.name), d, k.help())
		case []string:
			fs.StringSlice(flagName(k.name), d, k.help())
		default:
			return nil, fmt.Errorf("key %s: default of type %T", k.name, d)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Printf("clusterdns: DNS for Kubernetes-style clusters (cluster.local)\n\nUsage: clusterdns [flags]\n\n%s", fs.FlagUsages())
		}
		return nil, err
	}
	v := viper.New()
	for _, k := range keys {
		v.SetDefault(k.name, k.def)
		if err := v.BindPFlag(k.name, fs.Lookup(flagName(k.name))); err != nil {
			return nil, fmt.Errorf("flag %s: %w", k.name, err)
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
		for name := range file.AllSettings() {
			if !slices.ContainsFunc(keys, func(k key) bool { return k.name == name }) {
				return nil, fmt.Errorf("config file %s: unknown key %q", *cfgFile, name)
			}
		}
	}
	c := &Config{args: slices.Clone(args)}
	for _, k := range keys {
		if err := k.parse(v, c, k.name); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// restartOnly lists the keys whose change from old to next a reload cannot
// apply (the table's restart and restartIf).
func restartOnly(old, next *Config) []string {
	var names []string
	for _, k := range keys {
		if (k.restart != nil && !reflect.DeepEqual(k.restart(old), k.restart(next))) ||
			(k.restartIf != nil && k.restartIf(old, next)) {
			names = append(names, k.name)
		}
	}
	return names
}

// The Kubernetes source watches pods only for verified pod records and
// autopath: a reload cannot start or stop that watch, so with that source
// (not files) turning either on or off needs a restart.

func podsWatchChanged(old, next *Config) bool {
	return old.Source != sourceFiles && (old.Pods == server.PodsVerified) != (next.Pods == server.PodsVerified)
}

func autopathWatchChanged(old, next *Config) bool {
	return old.Source != sourceFiles && old.Autopath != next.Autopath
}

// The parsers of the table's rows: each returns a key.parse that reads the
// value, checks it and stores it through field.

func text(field func(*Config) *string) func(*viper.Viper, *Config, string) error {
	return func(v *viper.Viper, c *Config, name string) error {
		*field(c) = v.GetString(name)
		return nil
	}
}

func boolean(field func(*Config) *bool) func(*viper.Viper, *Config, string) error {
	return func(v *viper.Viper, c *Config, name string) error {
		*field(c) = v.GetBool(name)
		return nil
	}
}

// oneOf takes one of the values.
func oneOf(field func(*Config) *string, values ...string) func(*viper.Viper, *Config, string) error {
	return func(v *viper.Viper, c *Config, name string) error {
		s := v.GetString(name)
		if !slices.Contains(values, s) {
			return fmt.Errorf("%s %q: want %s or %s", name, s, strings.Join(values[:len(values)-1], ", "), values[len(values)-1])
		}
		*field(c) = s
		return nil
	}
}

// hostPort takes host:port, or "" when it may be empty (disabled).
func hostPort(mayBeEmpty bool, field func(*Config) *string) func(*viper.Viper, *Config, string) error {
	return func(v *viper.Viper, c *Config, name string) error {
		s := v.GetString(name)
		if s == "" && mayBeEmpty {
			*field(c) = s
			return nil
		}
		if _, _, err := net.SplitHostPort(s); err != nil {
			if mayBeEmpty {
				return fmt.Errorf("%s %q: want host:port, or empty to disable: %w", name, s, err)
			}
			return fmt.Errorf("%s %q: want host:port: %w", name, s, err)
		}
		*field(c) = s
		return nil
	}
}

// whole takes a whole number from lo to hi.
func whole(lo, hi int, field func(*Config) *int) func(*viper.Viper, *Config, string) error {
	return func(v *viper.Viper, c *Config, name string) error {
		n, err := intValue(v, name, lo, hi)
		*field(c) = n
		return err
	}
}

// ttl takes a TTL in seconds, 0 to 3600.
func ttl(field func(*Config) *uint32) func(*viper.Viper, *Config, string) error {
	return func(v *viper.Viper, c *Config, name string) error {
		n, err := intValue(v, name, 0, 3600)
		*field(c) = uint32(n)
		return err
	}
}

// duration takes a duration of at least lo and, unless hi is 0, at most
// hi; want describes one for the error.
func duration(lo, hi time.Duration, want string, field func(*Config) *time.Duration) func(*viper.Viper, *Config, string) error {
	return func(v *viper.Viper, c *Config, name string) error {
		s := v.GetString(name)
		d, err := time.ParseDuration(s)
		if err != nil || d < lo || (hi > 0 && d > hi) {
			return fmt.Errorf("%s %q: want %s", name, s, want)
		}
		*field(c) = d
		return nil
	}
}

// list takes a list whose items may also be comma-separated.
func list(field func(*Config) *[]string) func(*viper.Viper, *Config, string) error {
	return func(v *viper.Viper, c *Config, name string) error {
		*field(c) = items(v, name)
		return nil
	}
}

// networks takes a list of networks (CIDR prefixes).
func networks(field func(*Config) *[]netip.Prefix) func(*viper.Viper, *Config, string) error {
	return func(v *viper.Viper, c *Config, name string) error {
		for _, s := range items(v, name) {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("%s %q: want a network such as 10.0.0.0/8", name, s)
			}
			*field(c) = append(*field(c), p)
		}
		return nil
	}
}

// items returns a list key's items, comma-separated ones split, blanks
// dropped.
func items(v *viper.Viper, name string) []string {
	var out []string
	for _, e := range v.GetStringSlice(name) {
		for _, part := range strings.Split(e, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// parseHostsEntries takes hosts lines; a bad one is refused here rather
// than when the handler is built.
func parseHostsEntries(v *viper.Viper, c *Config, name string) error {
	c.Hosts.Entries = v.GetStringSlice(name)
	_, err := server.NewHosts(server.HostsOptions{Entries: c.Hosts.Entries}, slog.New(slog.DiscardHandler))
	return err
}

// parseHostsZones takes the zones hosts answers in.
func parseHostsZones(v *viper.Viper, c *Config, name string) error {
	c.Hosts.Zones = items(v, name)
	if _, err := server.NewHosts(server.HostsOptions{Zones: c.Hosts.Zones}, slog.New(slog.DiscardHandler)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// parseHostsTTL takes the TTL of hosts answers, 0 to 86400.
func parseHostsTTL(v *viper.Viper, c *Config, name string) error {
	n, err := intValue(v, name, 0, 86400)
	c.Hosts.TTL = uint32(n)
	return err
}

// parseRewriteName takes the question rewrite rules.
func parseRewriteName(v *viper.Viper, c *Config, name string) error {
	c.RewriteName = v.GetStringSlice(name)
	if _, err := server.NewRewriter(c.RewriteName); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func parseDomains(v *viper.Viper, c *Config, name string) error {
	c.Domains = items(v, name)
	if len(c.Domains) == 0 {
		return fmt.Errorf("%s: at least one cluster domain is needed", name)
	}
	return nil
}

func parseNamespaces(v *viper.Viper, c *Config, name string) error {
	for _, ns := range items(v, name) {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("%s: %q is not a namespace name: %s", name, ns, strings.Join(errs, "; "))
		}
		if !slices.Contains(c.Namespaces, ns) {
			c.Namespaces = append(c.Namespaces, ns)
		}
	}
	return nil
}

func parsePods(v *viper.Viper, c *Config, name string) error {
	c.Pods = server.PodMode(v.GetString(name))
	return c.Pods.Validate()
}

func parseUpstreamPolicy(v *viper.Viper, c *Config, name string) error {
	c.UpstreamPolicy = resolver.Policy(v.GetString(name))
	if err := c.UpstreamPolicy.Validate(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func parseAnswerOrder(v *viper.Viper, c *Config, name string) error {
	c.AnswerOrder = v.GetString(name)
	return server.ValidateAnswerOrder(c.AnswerOrder)
}

func parseZoneOrder(v *viper.Viper, c *Config, name string) error {
	c.ZoneOrder = map[string]string{}
	for _, e := range v.GetStringSlice(name) {
		zone, pol, ok := strings.Cut(e, "=")
		if !ok || zone == "" {
			return fmt.Errorf("%s %q: want zone=policy", name, e)
		}
		if err := server.ValidateAnswerOrder(pol); err != nil {
			return fmt.Errorf("%s %q: %w", name, e, err)
		}
		c.ZoneOrder[zone] = pol
	}
	return nil
}

func parseDNSService(v *viper.Viper, c *Config, name string) error {
	ns, svc, ok := strings.Cut(v.GetString(name), "/")
	if !ok || ns == "" || svc == "" {
		return fmt.Errorf("%s %q: want namespace/name", name, v.GetString(name))
	}
	c.DNSService = registry.Key{Namespace: ns, Name: svc}
	return nil
}

func parseLogLevel(v *viper.Viper, c *Config, name string) error {
	if err := c.LogLevel.UnmarshalText([]byte(v.GetString(name))); err != nil {
		return fmt.Errorf("%s %q: want debug, info, warn or error", name, v.GetString(name))
	}
	return nil
}

func parseMemoryLimit(v *viper.Viper, c *Config, name string) error {
	var err error
	c.MemoryLimit, err = memoryLimit(v.GetString(name))
	return err
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

// parseStubDomains reads stub_domains: in the file a map of domain to a
// list of servers, as a flag or variable domain=ip[;ip...] entries.
func parseStubDomains(v *viper.Viper, c *Config, name string) error {
	c.StubDomains = map[string][]string{}
	raw, ok := v.Get(name).(map[string]any)
	if !ok {
		for _, e := range v.GetStringSlice(name) {
			d, servers, ok := strings.Cut(e, "=")
			if !ok || d == "" || servers == "" {
				return fmt.Errorf("%s %q: want domain=ip[;ip...]", name, e)
			}
			c.StubDomains[d] = append(c.StubDomains[d], strings.Split(servers, ";")...)
		}
		return nil
	}
	// viper splits keys at dots: corp.example arrives as corp → example.
	var walk func(prefix string, m map[string]any) error
	walk = func(prefix string, m map[string]any) error {
		for k, val := range m {
			domain := strings.TrimPrefix(prefix+"."+k, ".")
			switch t := val.(type) {
			case map[string]any:
				if err := walk(domain, t); err != nil {
					return err
				}
			case []any:
				for _, s := range t {
					c.StubDomains[domain] = append(c.StubDomains[domain], fmt.Sprint(s))
				}
			case string:
				c.StubDomains[domain] = append(c.StubDomains[domain], t)
			default:
				return fmt.Errorf("%s %s: want a list of servers", name, domain)
			}
		}
		return nil
	}
	return walk("", raw)
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
