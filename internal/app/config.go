package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/server"
)

// Config is the validated configuration. Strength: flag > environment
// (CLUSTERDNS_<KEY>) > file (--config) > default. LoadConfig makes one.
type Config struct {
	args []string // the arguments it was read from: a reload reads them again

	Listen           string
	TLSListen        string // tls_listen: DNS over TLS, "" off
	TLSCertFile      string
	TLSKeyFile       string
	ZonesDir         string
	Domains          []string
	ClusterSetZone   string   // clusterset_zone: "" is off
	ReverseZones     []string // reverse_zones: CIDRs or reverse names (server.ReverseZones)
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
	// GCPercent is the GC target percentage set after the first full
	// index build (debug.SetGCPercent); 0 leaves Go's default, and $GOGC
	// overrides it.
	GCPercent int

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
			fmt.Printf("clusterdns: DNS for Kubernetes-style clusters (cluster.local)\n\nUsage: clusterdns [flags]\n       clusterdns import-corefile|import-kube-dns [--allow-partial] FILE  (print the equivalent configuration)\n\n%s", fs.FlagUsages())
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
