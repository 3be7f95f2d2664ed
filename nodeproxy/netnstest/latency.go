package netnstest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"time"
)

// Latencies is a sample of durations.
type Latencies []time.Duration

// Percentile returns the p-th percentile (0 < p <= 100, nearest rank).
func (l Latencies) Percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Mean returns the average.
func (l Latencies) Mean() time.Duration {
	if len(l) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	return sum / time.Duration(len(l))
}

// String is "p50 … p90 … p99 … max … (n=…)".
func (l Latencies) String() string {
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  max %v  (n=%d)",
		Round(l.Percentile(50)), Round(l.Percentile(90)), Round(l.Percentile(99)), Round(l.Percentile(100)), len(l))
}

// Round rounds d to three significant digits or so, for printing.
func Round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// TimeConnects makes rounds TCP connections from namespace ns to each of
// addrs, interleaved (one to each address per round, so that whatever else
// the machine does affects every address alike), and returns the connect
// times per address: from before socket() until the handshake is complete.
// Each connection is closed at once.
func TimeConnects(ns string, addrs []string, rounds int, timeout time.Duration) ([]Latencies, error) {
	return timeRounds(ns, addrs, rounds, func(addr string) (time.Duration, error) {
		t0 := time.Now()
		c, err := net.DialTimeout("tcp", addr, timeout)
		d := time.Since(t0)
		if err != nil {
			return 0, err
		}
		c.Close()
		return d, nil
	})
}

// TimeHTTPGets is TimeConnects for a whole HTTP/1.1 GET of path on a new
// connection (Connection: close): connect, request, status 200 and body
// read to the end.
func TimeHTTPGets(ns string, addrs []string, path string, rounds int, timeout time.Duration) ([]Latencies, error) {
	return timeRounds(ns, addrs, rounds, func(addr string) (time.Duration, error) {
		t0 := time.Now()
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		c.SetDeadline(t0.Add(timeout))
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("GET %s%s: %s", addr, path, resp.Status)
		}
		return d, nil
	})
}

func timeRounds(ns string, addrs []string, rounds int, one func(addr string) (time.Duration, error)) ([]Latencies, error) {
	out := make([]Latencies, len(addrs))
	err := Do(ns, func() error {
		for r := range rounds {
			for i := range addrs {
				// Alternate which address goes first.
				a := (i + r) % len(addrs)
				d, err := one(addrs[a])
				if err != nil {
					return fmt.Errorf("round %d, %s: %w", r, addrs[a], err)
				}
				out[a] = append(out[a], d)
			}
		}
		return nil
	})
	return out, err
}

// WaitConnect tries a TCP connection from namespace ns to addr every
// `every`, each attempt waiting at most attemptTimeout, until its outcome is
// want (true: connected; false: refused, unreachable or timed out). It
// returns when the first attempt with that outcome STARTED (the change it
// waits for happened between the start of the attempt before and that),
// or an error when ctx ends first.
func WaitConnect(ctx context.Context, ns, addr string, want bool, every, attemptTimeout time.Duration) (time.Time, error) {
	var at time.Time
	err := Do(ns, func() error {
		for {
			start := time.Now()
			c, err := net.DialTimeout("tcp", addr, attemptTimeout)
			if err == nil {
				c.Close()
			}
			if (err == nil) == want {
				at = start
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s from %s: still connected=%v: %w (last: %v)", addr, ns, !want, ctx.Err(), err)
			case <-time.After(every):
			}
		}
	})
	return at, err
}
