package app

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/server"
)

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

// parseClusterSetZone takes the multi-cluster zone: a domain name that is
// not one of the cluster domains (parsed before it), or "" for off.
func parseClusterSetZone(v *viper.Viper, c *Config, name string) error {
	z := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(v.GetString(name))), ".")
	c.ClusterSetZone = z
	if z == "" {
		return nil
	}
	if errs := validation.IsDNS1123Subdomain(z); len(errs) > 0 {
		return fmt.Errorf("%s: %q is not a domain name: %s", name, z, strings.Join(errs, "; "))
	}
	for _, d := range c.Domains {
		if strings.TrimSuffix(strings.ToLower(d), ".") == z {
			return fmt.Errorf("%s: %q is also a cluster domain (domains)", name, z)
		}
	}
	return nil
}

// parseReverseZones takes the reverse zones (CIDRs or reverse names),
// checked as the handler will read them.
func parseReverseZones(v *viper.Viper, c *Config, name string) error {
	c.ReverseZones = items(v, name)
	if _, err := server.ReverseZones(c.ReverseZones); err != nil {
		return fmt.Errorf("%s: %w", name, err)
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

// parseTLSKeyFile reads tls_key_file, the last of the DNS over TLS keys
// (parsed in the table's order), and checks the three together: tls_listen
// needs both files. Whether the files load is checked at start (Run).
func parseTLSKeyFile(v *viper.Viper, c *Config, name string) error {
	c.TLSKeyFile = v.GetString(name)
	if c.TLSListen != "" && (c.TLSCertFile == "" || c.TLSKeyFile == "") {
		return fmt.Errorf("tls_listen %q needs tls_cert_file and tls_key_file", c.TLSListen)
	}
	return nil
}
