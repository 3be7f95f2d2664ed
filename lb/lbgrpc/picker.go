package lbgrpc

import (
	"context"
	"errors"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/clusterdns/clusterdns/lb"
)

// picker is immutable once published. Picking is the lb.Balancer's PickKey
// (policy, priority, zone, ejection, outstanding counters) plus one map
// lookup from the picked endpoint to its subchannel.
type picker struct {
	lbb     *lb.Balancer
	hashKey string
	subs    map[*lb.Endpoint]pickEntry
}

// pickEntry is built once per endpoint per picker, so a pick returns a Done
// function without allocating a closure.
type pickEntry struct {
	sc   balancer.SubConn
	done func(balancer.DoneInfo)
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
	ent, ok := p.subs[e]
	if !ok {
		e.Done(context.Canceled) // neutral: releases the pick only
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	return balancer.PickResult{SubConn: ent.sc, Done: ent.done}, nil
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

// doneFunc returns the Done function of endpoint e's picks: it releases the
// outstanding-request counter and feeds outlier ejection (codes in mask are
// failures, CANCELLED is neutral, anything else is a success).
func doneFunc(e *lb.Endpoint, mask uint32) func(balancer.DoneInfo) {
	return func(di balancer.DoneInfo) { e.Done(classify(di.Err, mask)) }
}

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
