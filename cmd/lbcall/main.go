// Command lbcall calls a URL N times through the clusterdns client-side
// balancer (package lb) and prints how the calls spread over the endpoints:
//
//	lbcall --dns 127.0.0.1:5353 --n 100 http://web-server-service.default.svc.cluster.local/api/v1/healthz
//
// Each call's endpoint is the remote address of the connection it used
// (net/http/httptrace), so the table shows where requests really went.
//
// Given a gRPC target of the scheme "clusterdns" instead of a URL, it makes
// the calls with grpc-go through package lbgrpc, calling the standard health
// service (grpc.health.v1.Health/Check), and shows where they went (the
// call's peer) and the serving statuses:
//
//	lbcall --dns 127.0.0.1:5353 --n 100 clusterdns:///web.default.svc.cluster.local:8080
//	lbcall --n 100 --policy round_robin clusterdns://127.0.0.1:5353/_grpc._tcp.web.default.svc.cluster.local
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/clusterdns/clusterdns/lb"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, makes the calls and prints the table; it returns the exit
// status: 0 when every call succeeded, 1 when some failed, 2 on bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lbcall", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dnsAddr := fs.String("dns", "", "DNS server host:port (default: the nameservers of /etc/resolv.conf)")
	n := fs.Int("n", 100, "number of calls")
	workers := fs.Int("c", 1, "concurrent callers")
	policy := fs.String("policy", "", "round_robin, random, p2c, least_request, maglev or weighted (default: p2c, weighted with --port-name)")
	portName := fs.String("port-name", "", "resolve SRV _<port-name>._tcp.<host> instead of A/AAAA")
	zone := fs.String("zone", "", "the caller's zone, for zone preference")
	domain := fs.String("domain", "cluster.local", "cluster domain")
	mode := fs.String("mode", "rt", "rt: balance every request (lb.RoundTripper); dial: balance connections (lb.Pool.DialContext under one http.Transport)")
	key := fs.String("key", "", "consistent-hashing key sent with every call (for --policy maglev)")
	timeout := fs.Duration("timeout", 5*time.Second, "timeout of one call")
	verbose := fs.Bool("v", false, "log the balancer's decisions to stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: lbcall [flags] URL | clusterdns://[dns]/name:port | clusterdns://[dns]/_port._tcp.name")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || *n < 1 || *workers < 1 {
		fs.Usage()
		return 2
	}
	url := fs.Arg(0)
	if isGRPCTarget(url) {
		g := grpcCall{target: url, dns: *dnsAddr, policy: *policy, zone: *zone, timeout: *timeout}
		conn, err := g.dial()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		defer conn.Close()
		if *key != "" {
			ctx = lb.WithHashKey(ctx, *key)
		}
		res := callN(*n, *workers, func() (string, string, error) { return g.once(ctx, conn) })
		report(stdout, res, *n)
		if len(res.errs) > 0 {
			return 1
		}
		return 0
	}

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	cfg := lb.Config{
		Resolver: lb.ResolverConfig{Server: *dnsAddr},
		Balancer: lb.BalancerConfig{Zone: *zone},
		Domain:   *domain,
		PortName: *portName,
		Logger:   slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	if *policy != "" {
		p, err := lb.PolicyByName(*policy)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		cfg.Balancer.Policy = p
	}
	pool, err := lb.NewPool(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer pool.Close()
	var rt http.RoundTripper
	switch *mode {
	case "rt":
		t := lb.NewRoundTripper(pool, nil)
		defer t.Close()
		rt = t
	case "dial":
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = pool.DialContext
		defer t.CloseIdleConnections()
		rt = t
	default:
		fmt.Fprintf(stderr, "unknown --mode %q (want rt or dial)\n", *mode)
		return 2
	}
	client := &http.Client{Transport: rt, Timeout: *timeout}
	if *key != "" {
		ctx = lb.WithHashKey(ctx, *key)
	}

	res := call(ctx, client, url, *n, *workers)
	report(stdout, res, *n)
	if len(res.errs) > 0 {
		return 1
	}
	return 0
}

type result struct {
	mu       sync.Mutex
	perAddr  map[string]int
	statuses map[string]int
	errs     []error
}

// call makes n GET requests from workers goroutines.
func call(ctx context.Context, client *http.Client, url string, n, workers int) *result {
	return callN(n, workers, func() (string, string, error) {
		addr, status, err := once(ctx, client, url)
		return addr, strconv.Itoa(status), err
	})
}

// callN makes n calls of one from workers goroutines; one returns the
// endpoint that answered and the call's status.
func callN(n, workers int, one func() (addr, status string, err error)) *result {
	res := &result{perAddr: make(map[string]int), statuses: make(map[string]int)}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				addr, status, err := one()
				res.mu.Lock()
				if err != nil {
					res.errs = append(res.errs, err)
				} else {
					res.perAddr[addr]++
					res.statuses[status]++
				}
				res.mu.Unlock()
			}
		})
	}
	wg.Wait()
	return res
}

// once makes one call and returns the endpoint it reached and the status.
func once(ctx context.Context, client *http.Client, url string) (addr string, status int, err error) {
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { addr = info.Conn.RemoteAddr().String() }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", 0, fmt.Errorf("reading the body from %s: %w", addr, err)
	}
	return addr, resp.StatusCode, nil
}

func report(w io.Writer, res *result, n int) {
	fmt.Fprintf(w, "calls %d, answered %d, failed %d\n", n, n-len(res.errs), len(res.errs))
	addrs := make([]string, 0, len(res.perAddr))
	for a := range res.perAddr {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "endpoint\tcalls\tshare\t")
	for _, a := range addrs {
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t\n", a, res.perAddr[a], 100*float64(res.perAddr[a])/float64(n))
	}
	tw.Flush()
	codes := make([]string, 0, len(res.statuses))
	for c := range res.statuses {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "status %s: %d\n", c, res.statuses[c])
	}
	// Distinct errors, with their counts.
	seen := make(map[string]int)
	var order []string
	for _, err := range res.errs {
		msg := errors.Unwrap(err)
		if msg == nil {
			msg = err
		}
		s := msg.Error()
		if seen[s] == 0 {
			order = append(order, s)
		}
		seen[s]++
	}
	for _, s := range order {
		fmt.Fprintf(w, "error ×%d: %s\n", seen[s], s)
	}
}
