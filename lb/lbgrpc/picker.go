package lbgrpc

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/clusterdns/clusterdns/lb"
)

// picker is immutable once published. Picking is the lb.Balancer's PickKey
// (policy, priority, zone, ejection, outstanding counters and latency
// estimates) plus one map lookup from the picked endpoint to its subchannel.
type picker struct {
	lbb     *lb.Balancer
	hashKey string
	subs    map[*lb.Endpoint]balancer.SubConn
	mask    uint32     // status codes counted as failures
	calls   *sync.Pool // of *call, the balancer's
}

// call is one pick in flight: its endpoint and start, so that Done can feed
// the endpoint's latency estimate. Calls are recycled through the balancer's
// pool, each with its Done method value made once, so a pick allocates
// nothing once the pool is warm.
type call struct {
	e     *lb.Endpoint
	mask  uint32
	start time.Time
	pool  *sync.Pool
	done  func(balancer.DoneInfo) // c.finish
}

// newCallPool returns the pool of a balancer's calls.
func newCallPool() *sync.Pool {
	pool := &sync.Pool{}
	pool.New = func() any {
		c := &call{pool: pool}
		c.done = c.finish
		return c
	}
	return pool
}

// newCall starts a call to e.
func (p *picker) newCall(e *lb.Endpoint) *call {
	c := p.calls.Get().(*call)
	c.e, c.mask, c.start = e, p.mask, time.Now()
	return c
}

// finish is the Done of a pick (grpc calls it once, when the RPC ends): it
// releases the endpoint's outstanding-request counter, feeds outlier ejection
// (codes in the mask are failures, CANCELLED is neutral, anything else is a
// success) and, for a success, the latency estimate with the time since the
// pick. For a stream that time is the stream's life.
func (c *call) finish(di balancer.DoneInfo) {
	e, took, err := c.e, time.Since(c.start), classify(di.Err, c.mask)
	c.e = nil
	c.pool.Put(c)
	e.DoneLatency(err, took)
}

// Pick implements balancer.Picker. It never blocks. It allocates nothing
// unless the hash key comes from request metadata (grpc's metadata accessor
// copies the value); lb.WithHashKey on the context avoids that.
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	e, err := p.lbb.PickKey(p.key(info.Ctx))
	if err != nil {
		// The set changed under this picker; a new one is on its way.
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	sc, ok := p.subs[e]
	if !ok {
		e.Done(context.Canceled) // neutral: releases the pick only
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	return balancer.PickResult{SubConn: sc, Done: p.newCall(e).done}, nil
}

func (p *picker) key(ctx context.Context) uint64 {
	if ctx == nil {
		return 0
	}
	if k := lb.HashKeyFrom(ctx); k != 0 || p.hashKey == "" {
		return k
	}
	if v := metadata.ValueFromOutgoingContext(ctx, p.hashKey); len(v) > 0 {
		return lb.HashKey(v[0])
	}
	return 0
}

// errFailed is what Endpoint.Done receives for an RPC that ended with one of
// the failure codes.
var errFailed = errors.New("lbgrpc: RPC failed with a status code counted as a failure")

func classify(err error, mask uint32) error {
	if err == nil {
		return nil
	}
	code := status.Code(err)
	switch {
	case code == codes.Canceled || errors.Is(err, context.Canceled):
		return context.Canceled
	case code <= maxCode && mask&(1<<code) != 0:
		return errFailed
	}
	return nil
}

// errPicker fails (or, with balancer.ErrNoSubConnAvailable, queues) every pick.
type errPicker struct{ err error }

// Pick implements balancer.Picker.
func (p errPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{}, p.err
}
