package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/clusterdns/clusterdns/registry"
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
}

// setting is one configuration key: its flag, default and help.
type setting struct {
	key, help string
	def       any
}

var settings = []setting{
	{"listen", "address for DNS over UDP and TCP (host:port)", "127.0.0.1:5353"},
	{"zones_dir", "folder of cluster manifests (*.yaml) and zone files (*.zone), watched for changes; empty serves the embedded example cluster", ""},
	{"domains", "cluster domains served (comma-separated)", []string{"cluster.local"}},
	{"ttl", "TTL of cluster records, seconds (0-3600)", 5},
	{"negative_ttl", "TTL of negative answers (the SOA minimum), seconds (0-3600)", 5},
	{"pods", "pod records a-b-c-d.<ns>.pod.<zone>: disabled, insecure or verified", "disabled"},
	{"endpoint_pod_names", "name endpoints without a hostname after their pod instead of their address", false},
	{"dns_service", "namespace/name of the service whose ClusterIP is the zones' NS address", "kube-system/kube-dns"},
	{"udp_sockets", "UDP sockets (SO_REUSEPORT), one reader each; 0 = one per CPU", 0},
	{"log_level", "debug, info, warn or error", "info"},
	{"log_format", "text or json", "text"},
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
		_ = file.ReadInConfig()
		for _, k := range file.AllKeys() {
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
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return nil, fmt.Errorf("log_format %q: want text or json", c.LogFormat)
	}
	return c, nil
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
