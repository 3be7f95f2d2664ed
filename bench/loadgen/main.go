// Command loadgen is a UDP DNS load generator for bench/: several
// connected sockets, each keeping a window of queries in flight and
// sending and receiving in batches (sendmmsg/recvmmsg), so that one core
// of it outruns one dnsperf process. It reads a dnsperf query file
// (bench/gencluster writes one), checks each answer's ID and question, and
// reports the answered rate, the latency percentiles, the response codes
// and its own CPU, and with -pid the server's CPU over the same window.
//
//	loadgen -s 127.0.0.1:15353 -d queries.txt -l 10s -sockets 4 -q 64
//	loadgen ... -Q 100000 -pid $(pidof clusterdns)   # a fixed rate
//
// It exits non-zero when the file cannot be read, a socket fails, or an
// answer does not match its query.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// run parses args, generates the load and writes the report to out.
func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	server := fs.String("s", "127.0.0.1:53", "server address ip:port")
	file := fs.String("d", "", "query file: \"name type\" per line (dnsperf's format)")
	dur := fs.Duration("l", 10*time.Second, "how long to send")
	sockets := fs.Int("sockets", 4, "UDP sockets (one goroutine each)")
	window := fs.Int("q", 64, "queries in flight per socket")
	batch := fs.Int("batch", 32, "messages per sendmmsg/recvmmsg")
	rate := fs.Float64("Q", 0, "queries per second in total (0: as fast as answered)")
	timeout := fs.Duration("t", 2*time.Second, "an unanswered query is lost after this")
	edns := fs.Int("edns", 1232, "EDNS UDP size sent with each query (0: no EDNS)")
	pids := fs.String("pid", "", "comma-separated PIDs whose CPU to report over the run (the server)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(*server)
	if err != nil {
		return fmt.Errorf("-s: %w", err)
	}
	if *file == "" {
		return fmt.Errorf("-d: a query file is needed")
	}
	if *sockets < 1 || *window < 1 || *batch < 1 || *window > 30000 {
		return fmt.Errorf("-sockets, -q and -batch must be at least 1, -q at most 30000")
	}
	var watch []int
	for _, p := range strings.Split(*pids, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("-pid %q: %w", p, err)
		}
		watch = append(watch, n)
	}
	f, err := os.Open(*file)
	if err != nil {
		return fmt.Errorf("-d: %w", err)
	}
	qs, err := loadQueries(f, *edns)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	cfg := &config{server: ap, queries: qs, sockets: *sockets, window: *window, batch: min(*batch, *window),
		rate: *rate / float64(*sockets), timeout: *timeout}
	ws := make([]*worker, *sockets)
	for i := range ws {
		if ws[i], err = newWorker(cfg, i*len(qs) / *sockets); err != nil {
			return err
		}
	}
	cpu0, err := cpuTimes(watch)
	if err != nil {
		return err
	}
	cfg.start = time.Now()
	cfg.deadline = cfg.start.Add(*dur)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() { defer wg.Done(); w.run() }()
	}
	// The CPU window is the sending window: the drain after it would
	// lower the figures.
	time.Sleep(time.Until(cfg.deadline))
	cpu1, err := cpuTimes(watch)
	if err != nil {
		return err
	}
	wall := time.Since(cfg.start)
	wg.Wait()
	total := stats{lat: newHist()}
	for _, w := range ws {
		total.merge(&w.st)
	}
	report(out, cfg, &total, *dur, wall, watch, cpu0, cpu1)
	if total.err != nil {
		return total.err
	}
	if total.mismatched > 0 {
		return fmt.Errorf("%d answers did not repeat their query's question", total.mismatched)
	}
	return nil
}

// cpuTimes returns this process's CPU time followed by that of each pid
// (utime+stime of all its threads, from /proc/PID/stat).
func cpuTimes(pids []int) ([]time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return nil, fmt.Errorf("getrusage: %w", err)
	}
	ts := []time.Duration{time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			return nil, fmt.Errorf("-pid %d: %w", p, err)
		}
		// The fields after the command name, which is in parentheses and
		// may hold spaces: utime and stime are the 12th and 13th.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			return nil, fmt.Errorf("-pid %d: short /proc/%d/stat", p, p)
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		ts = append(ts, time.Duration(u+k)*time.Second/clockTicks)
	}
	return ts, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go runs on.
const clockTicks = 100

// report writes the figures in dnsperf's spirit, one per line.
func report(out io.Writer, cfg *config, st *stats, dur, wall time.Duration, pids []int, cpu0, cpu1 []time.Duration) {
	secs := wall.Seconds()
	fmt.Fprintf(out, "loadgen: %s, %d queries in the file, %d sockets x %d in flight, batch %d, ", cfg.server, len(cfg.queries), cfg.sockets, cfg.window, cfg.batch)
	if cfg.rate > 0 {
		fmt.Fprintf(out, "rate %.0f/s\n", cfg.rate*float64(cfg.sockets))
	} else {
		fmt.Fprintln(out, "as fast as answered")
	}
	fmt.Fprintf(out, "  Run time (s):          %.3f\n", secs)
	fmt.Fprintf(out, "  Queries sent:          %d\n", st.sent)
	fmt.Fprintf(out, "  Queries completed:     %d (%.2f%%)\n", st.answered, pct(st.answered, st.sent))
	fmt.Fprintf(out, "  Queries lost:          %d (%.2f%%)\n", st.lost, pct(st.lost, st.sent))
	fmt.Fprintf(out, "  Unexpected answers:    %d, mismatched: %d\n", st.unexpected, st.mismatched)
	fmt.Fprintf(out, "  Response codes:        %s\n", rcodes(st))
	fmt.Fprintf(out, "  Queries per second:    %.0f (answered within the run)\n", float64(st.inWindow)/secs)
	h := st.lat
	fmt.Fprintf(out, "  Latency (ms):          avg %.3f p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f\n",
		ms(h.mean()), ms(h.quantile(0.5)), ms(h.quantile(0.9)), ms(h.quantile(0.99)), ms(h.quantile(0.999)), ms(h.max))
	fmt.Fprintf(out, "  CPU loadgen (cores):   %.3f\n", (cpu1[0]-cpu0[0]).Seconds()/secs)
	for i, p := range pids {
		used := (cpu1[i+1] - cpu0[i+1]).Seconds()
		per := 0.0
		if st.inWindow > 0 {
			per = used / float64(st.inWindow) * 1e6
		}
		fmt.Fprintf(out, "  CPU pid %d (cores):  %.3f (%.2f µs per answered query)\n", p, used/secs, per)
	}
}

func pct(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func rcodes(st *stats) string {
	var parts []string
	for c, n := range st.rcodes {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d (%.1f%%)", dns.RcodeToString[c], n, pct(n, st.answered)))
		}
	}
	return strings.Join(parts, ", ")
}
