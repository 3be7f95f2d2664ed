package app

import (
	"net/netip"
	"time"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/server"
)

// keys is the table of configuration keys, the one place each is spelled:
// it makes the flags and their defaults, --help, the check of every value
// (parse), the list of keys a reload cannot apply (restart) and, through
// TestReadmeConfigurationTable, the README's configuration table, in its
// order. To add a key: add a field to Config and a row here (its meaning
// as the README shows it), then the same row to the README's table.
var keys = []key{
	{
		name:    "listen",
		def:     "127.0.0.1:5353",
		meaning: "address for DNS over UDP and TCP",
		restart: func(c *Config) any { return c.Listen },
		parse:   hostPort(false, func(c *Config) *string { return &c.Listen }),
	},
	{
		name:    "source",
		def:     sourceAuto,
		meaning: "`kubernetes` (informers), `files`, or `auto`: the API when a kubeconfig is given, `$KUBECONFIG` is set or it runs in a pod",
		restart: func(c *Config) any { return c.Source },
		parse:   oneOf(func(c *Config) *string { return &c.Source }, sourceAuto, sourceKubernetes, sourceFiles),
	},
	{
		name:    "kubeconfig",
		def:     "",
		meaning: "kubeconfig file; empty uses `$KUBECONFIG`, else the in-cluster service account",
		restart: func(c *Config) any { return c.Kubeconfig },
		parse:   text(func(c *Config) *string { return &c.Kubeconfig }),
	},
	{
		name:    "namespaces",
		def:     []string{},
		shown:   "(all)",
		meaning: "serve only these namespaces (Kubernetes source)",
		restart: func(c *Config) any { return c.Namespaces },
		parse:   parseNamespaces,
	},
	{
		name:    "sync_timeout",
		def:     "30s",
		meaning: "longest SERVFAIL wait for the first full sync; then what is loaded is served (and logged)",
		restart: func(c *Config) any { return c.SyncTimeout },
		parse:   duration(0, 0, "a duration such as 30s or 2m, 0 to wait for ever", func(c *Config) *time.Duration { return &c.SyncTimeout }),
	},
	{
		name:    "zones_dir",
		def:     "",
		shown:   "(embedded `zones/`)",
		meaning: "folder of cluster manifests (`*.yaml`, `*.yml`, `*.json`) and zone files (`*.zone`), watched",
		restart: func(c *Config) any { return c.ZonesDir },
		parse:   text(func(c *Config) *string { return &c.ZonesDir }),
	},
	{
		name:    "domains",
		def:     []string{"cluster.local"},
		meaning: "cluster domains served (comma-separated; the first names PTR targets)",
		parse:   parseDomains,
	},
	{
		name:    "ttl",
		def:     5,
		meaning: "TTL of cluster records (0–3600)",
		parse:   ttl(func(c *Config) *uint32 { return &c.TTL }),
	},
	{
		name:    "negative_ttl",
		def:     5,
		meaning: "TTL of negative answers, the SOA minimum (0–3600)",
		parse:   ttl(func(c *Config) *uint32 { return &c.NegativeTTL }),
	},
	{
		name:      "pods",
		def:       string(server.PodsDisabled),
		meaning:   "pod records: `disabled`, `insecure`, `verified`",
		restartIf: podsWatchChanged,
		parse:     parsePods,
	},
	{
		name:    "endpoint_pod_names",
		def:     false,
		meaning: "endpoints without hostname are named after their pod",
		restart: func(c *Config) any { return c.EndpointPodNames },
		parse:   boolean(func(c *Config) *bool { return &c.EndpointPodNames }),
	},
	{
		name:    "dns_service",
		def:     "kube-system/kube-dns",
		meaning: "the service whose ClusterIP is the NS glue",
		parse:   parseDNSService,
	},
	{
		name:    "upstreams",
		def:     []string{"/etc/resolv.conf"},
		meaning: "`ip`, `ip:port`, `tcp://ip:port` (TCP only) or a resolv.conf path; empty: no forwarding",
		parse:   list(func(c *Config) *[]string { return &c.Upstreams }),
	},
	{
		name:    "stub_domains",
		def:     []string{},
		meaning: "per-domain servers: `corp.example=10.0.0.53;10.0.0.54` (in the file: a map of domain to list)",
		parse:   parseStubDomains,
	},
	{
		name:    "upstream_policy",
		def:     string(resolver.Random),
		meaning: "`random`, `round_robin`, `sequential`; a failing upstream is skipped and probed until it answers",
		parse:   parseUpstreamPolicy,
	},
	{
		name:    "forward_timeout",
		def:     "2s",
		meaning: "one upstream exchange",
		parse:   duration(time.Millisecond, 0, "a duration such as 2s, 5m or 1h", func(c *Config) *time.Duration { return &c.ForwardTimeout }),
	},
	{
		name:    "recursion_from",
		def:     []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10"},
		shown:   "loopback, private, link-local ranges",
		meaning: "clients that may ask names outside the served zones",
		parse:   networks(func(c *Config) *[]netip.Prefix { return &c.RecursionFrom }),
	},
	{
		name:    "cache_size",
		def:     10000,
		meaning: "forwarded answers cached at most",
		parse:   whole(0, 10_000_000, func(c *Config) *int { return &c.CacheSize }),
	},
	{
		name:    "cache_max_ttl",
		def:     "1h",
		meaning: "longest time a forwarded answer is cached",
		parse:   duration(0, 0, "a duration such as 2s, 5m or 1h", func(c *Config) *time.Duration { return &c.CacheMaxTTL }),
	},
	{
		name:    "cache_max_negative_ttl",
		def:     "30m",
		meaning: "longest time a forwarded NXDOMAIN/NODATA is cached (its SOA minimum, RFC 2308, otherwise)",
		parse:   duration(0, 0, "a duration such as 2s, 5m or 1h", func(c *Config) *time.Duration { return &c.CacheMaxNegTTL }),
	},
	{
		name:    "serve_stale",
		def:     "1h",
		meaning: "how long an expired answer may be served when every upstream fails (RFC 8767), TTL 30 s",
		parse:   duration(0, 0, "a duration such as 2s, 5m or 1h", func(c *Config) *time.Duration { return &c.ServeStale }),
	},
	{
		name:    "prefetch",
		def:     10,
		meaning: "refresh a popular entry in the last N % of its TTL",
		parse:   whole(0, 100, func(c *Config) *int { return &c.Prefetch }),
	},
	{
		name:      "autopath",
		def:       false,
		meaning:   "server-side search-path completion (needs pods known by IP: `pods: verified`, or pods in files)",
		restartIf: autopathWatchChanged,
		parse:     boolean(func(c *Config) *bool { return &c.Autopath }),
	},
	{
		name:    "answer_order",
		def:     "round_robin",
		meaning: "order of a name's A/AAAA records per query: `round_robin`, `random` or `off`",
		parse:   parseAnswerOrder,
	},
	{
		name:    "answer_order_zones",
		def:     []string{},
		meaning: "per-zone order, `zone=policy`; the zone `.` stands for forwarded answers",
		parse:   parseZoneOrder,
	},
	{
		name:    "query_log",
		def:     false,
		meaning: "log each query received (client, name, type)",
		parse:   boolean(func(c *Config) *bool { return &c.QueryLog }),
	},
	{
		name:    "query_log_sample",
		def:     1,
		meaning: "with `query_log`, log one query in N",
		parse:   whole(1, 1_000_000, func(c *Config) *int { return &c.QueryLogSample }),
	},
	{
		name:    "health_listen",
		def:     defaultHealthListen,
		meaning: "`/healthz`, and `/ready` (synced and not shutting down)",
		restart: func(c *Config) any { return c.HealthListen },
		parse:   hostPort(true, func(c *Config) *string { return &c.HealthListen }),
	},
	{
		name:    "metrics_listen",
		def:     defaultMetricsListen,
		meaning: "Prometheus `/metrics`",
		restart: func(c *Config) any { return c.MetricsListen },
		parse:   hostPort(true, func(c *Config) *string { return &c.MetricsListen }),
	},
	{
		name:    "pprof",
		def:     false,
		meaning: "also serve `/debug/pprof/` on the metrics address",
		restart: func(c *Config) any { return c.Pprof },
		parse:   boolean(func(c *Config) *bool { return &c.Pprof }),
	},
	{
		name:    "lame_duck",
		def:     "5s",
		meaning: "after SIGTERM `/ready` fails at once, queries are answered this long, then the listeners close",
		parse:   duration(0, 0, "a duration such as 5s", func(c *Config) *time.Duration { return &c.LameDuck }),
	},
	{
		name:    "udp_sockets",
		def:     0,
		shown:   "`0` (one per CPU)",
		meaning: "SO_REUSEPORT UDP sockets, one reader goroutine each (recvmmsg/sendmmsg batches of up to 16 queries; a UDP query over 4,096 bytes gets FORMERR)",
		restart: func(c *Config) any { return c.UDPSockets },
		parse:   whole(0, 1024, func(c *Config) *int { return &c.UDPSockets }),
	},
	{
		name:    "log_level",
		def:     "info",
		meaning: "`debug`, `info`, `warn`, `error`",
		restart: func(c *Config) any { return c.LogLevel },
		parse:   parseLogLevel,
	},
	{
		name:    "log_format",
		def:     "text",
		meaning: "log/slog as `text` or `json`",
		restart: func(c *Config) any { return c.LogFormat },
		parse:   oneOf(func(c *Config) *string { return &c.LogFormat }, "text", "json"),
	},
	{
		name:    "max_tcp_conns",
		def:     1024,
		meaning: "concurrent DNS-over-TCP connections; more are closed at once",
		restart: func(c *Config) any { return c.MaxTCPConns },
		parse:   whole(1, 1_000_000, func(c *Config) *int { return &c.MaxTCPConns }),
	},
	{
		name:    "tcp_idle_timeout",
		def:     "10s",
		meaning: "a TCP connection that sends no complete query for this long is closed (slowloris)",
		restart: func(c *Config) any { return c.TCPIdleTimeout },
		parse:   duration(time.Millisecond, time.Hour, "a duration from 1ms to 1h, such as 10s", func(c *Config) *time.Duration { return &c.TCPIdleTimeout }),
	},
	{
		name:    "max_forward_in_flight",
		def:     1000,
		meaning: "forwarded queries waiting for an upstream; beyond, SERVFAIL at once",
		parse:   whole(1, 1_000_000, func(c *Config) *int { return &c.MaxForwardInFlight }),
	},
	{
		name:    "rrl_responses_per_second",
		def:     0,
		shown:   "`0` (off)",
		meaning: "response rate limiting on UDP, per client /24 (IPv4) or /56 (IPv6) and answer (name and type; all NXDOMAIN share one, all errors one); TCP is never limited",
		restart: func(c *Config) any { return c.RRL.ResponsesPerSecond },
		parse:   whole(0, 1_000_000, func(c *Config) *int { return &c.RRL.ResponsesPerSecond }),
	},
	{
		name:    "rrl_slip",
		def:     2,
		meaning: "over the limit, every Nth response is sent truncated (TC=1) so real clients retry over TCP; `0` drops all",
		restart: func(c *Config) any { return c.RRL.Slip },
		parse:   whole(0, 10, func(c *Config) *int { return &c.RRL.Slip }),
	},
	{
		name:    "rrl_window",
		def:     "15s",
		meaning: "how long a client that went over the limit stays limited at most",
		restart: func(c *Config) any { return c.RRL.Window },
		parse:   duration(time.Millisecond, time.Hour, "a duration from 1ms to 1h, such as 10s", func(c *Config) *time.Duration { return &c.RRL.Window }),
	},
	{
		name:    "transfer_from",
		def:     []string{},
		meaning: "networks allowed to ask AXFR/IXFR; transfers are not implemented (NOTIMP for them, REFUSED for everyone else)",
		parse:   networks(func(c *Config) *[]netip.Prefix { return &c.TransferFrom }),
	},
	{
		name:    "memory_limit",
		def:     "",
		shown:   "(`$GOMEMLIMIT`)",
		meaning: "soft memory limit of the Go runtime, such as `100MiB`: near it the garbage collector runs more often (it never stops the server); `0` removes it",
		parse:   parseMemoryLimit,
	},
}
