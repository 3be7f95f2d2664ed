package lbgrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/clusterdns/clusterdns/lb"
)

// BalancerPrefix starts the name of every balancer of this package:
// BalancerPrefix + "p2c", "least_request", "weighted", "maglev",
// "round_robin", "random".
const BalancerPrefix = "clusterdns_"

// PolicyNames are the lb policies registered as grpc balancers (with
// BalancerPrefix).
var PolicyNames = []string{"p2c", "least_request", "weighted", "maglev", "round_robin", "random"}

func init() {
	resolver.Register(NewBuilder(ResolverOptions{}))
	for _, name := range PolicyNames {
		policy, err := lb.PolicyByName(name)
		if err != nil {
			panic(err) // PolicyNames lists lb's own names
		}
		balancer.Register(&balancerBuilder{name: BalancerPrefix + name, policy: policy})
	}
}

type balancerBuilder struct {
	name   string
	policy lb.Policy
}

// Name implements balancer.Builder.
func (b *balancerBuilder) Name() string { return b.name }

// ParseConfig implements balancer.ConfigParser; grpc calls it with the
// balancer's part of the service config.
func (b *balancerBuilder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	return parseConfig(b.name, js)
}

// Build implements balancer.Builder; grpc calls it once per channel.
func (b *balancerBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	gb := &grpcBalancer{
		cc:     cc,
		name:   b.name,
		policy: b.policy,
		target: opts.Target.String(),
		log:    slog.Default().With("balancer", b.name, "target", opts.Target.String()),
		subs:   make(map[netip.AddrPort]*subConn),
		calls:  newCallPool(),
	}
	gb.configure(&Config{}) // until the service config's arrives
	return gb
}

// configure replaces the lb.Balancer with one for cfg. Counters and
// ejections start afresh; the next publish fills it.
func (b *grpcBalancer) configure(cfg *Config) {
	if b.lbb != nil {
		b.lbb.Close()
	}
	b.cfg = cfg
	bc := cfg.balancerConfig(b.target, b.policy)
	// The lb.Balancer's endpoints come and go with subchannel states;
	// only its warnings (ejections) are news.
	bc.Logger = slog.New(warnOnly{b.log.Handler()})
	b.lbb = lb.NewBalancer(nil, bc)
}

// grpcBalancer is one channel's balancer. grpc calls its methods (and the
// subchannel state listeners) from one goroutine at a time; pickers run
// concurrently and only read what they were built with.
type grpcBalancer struct {
	cc     balancer.ClientConn
	name   string
	policy lb.Policy
	target string
	log    *slog.Logger

	cfg   *Config
	lbb   *lb.Balancer // over the READY subchannels
	subs  map[netip.AddrPort]*subConn
	calls *sync.Pool // recycled picks (see call)
	state connectivity.State
	// Why there is no READY subchannel, for the failing picker.
	resolverErr, connErr error
}

type subConn struct {
	sc    balancer.SubConn
	info  lb.EndpointInfo
	state connectivity.State
}

// UpdateClientConnState implements balancer.Balancer: it applies a new
// configuration and endpoint set, creating subchannels for new endpoints and
// shutting down (gracefully: started RPCs finish) those that left.
func (b *grpcBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	cfg, _ := s.BalancerConfig.(*Config)
	if cfg == nil {
		cfg = &Config{}
	}
	if !reflect.DeepEqual(cfg, b.cfg) {
		b.configure(cfg)
	}
	eps := s.ResolverState.Endpoints
	if len(eps) == 0 {
		for _, a := range s.ResolverState.Addresses {
			eps = append(eps, resolver.Endpoint{Addresses: []resolver.Address{a}})
		}
	}
	seen := make(map[netip.AddrPort]bool, len(eps))
	var bad []string
	for _, ep := range eps {
		if len(ep.Addresses) == 0 {
			continue
		}
		addr := ep.Addresses[0]
		ap, err := netip.ParseAddrPort(addr.Addr)
		if err != nil {
			bad = append(bad, addr.Addr)
			continue
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if seen[ap] {
			continue
		}
		seen[ap] = true
		info, _ := Info(ep) // zero for endpoints of another resolver
		info.Addr = ap
		if s := b.subs[ap]; s != nil {
			s.info = info
			continue
		}
		s := &subConn{info: info, state: connectivity.Idle}
		sc, err := b.cc.NewSubConn([]resolver.Address{addr}, balancer.NewSubConnOptions{
			HealthCheckEnabled: true, // used when the service config asks for it
			StateListener:      func(st balancer.SubConnState) { b.updateSubConnState(s, st) },
		})
		if err != nil {
			b.log.Warn("creating a subchannel failed", "endpoint", ap, "err", err)
			continue
		}
		s.sc = sc
		b.subs[ap] = s
		sc.Connect()
	}
	for ap, s := range b.subs {
		if !seen[ap] {
			s.sc.Shutdown()
			delete(b.subs, ap)
		}
	}
	if len(bad) > 0 {
		b.log.Warn("ignoring addresses that are not ip:port", "addresses", bad)
	}
	if len(b.subs) == 0 {
		b.resolverErr = fmt.Errorf("lbgrpc: no usable address for %s (need ip:port, got %d addresses: %v)", b.target, len(eps), bad)
		b.publish()
		return balancer.ErrBadResolverState
	}
	b.resolverErr = nil
	b.publish()
	return nil
}

// ResolverError implements balancer.Balancer. The subchannels in use stay;
// only a channel without any fails RPCs with err.
func (b *grpcBalancer) ResolverError(err error) {
	b.resolverErr = err
	if len(b.subs) == 0 {
		b.publish()
	}
}

// UpdateSubConnState implements balancer.Balancer; unused, since every
// subchannel has a StateListener.
func (b *grpcBalancer) UpdateSubConnState(sc balancer.SubConn, st balancer.SubConnState) {
	b.log.Error("unexpected subchannel state update", "state", st.ConnectivityState)
}

func (b *grpcBalancer) updateSubConnState(s *subConn, st balancer.SubConnState) {
	if b.subs[s.info.Addr] != s {
		return // shut down
	}
	s.state = st.ConnectivityState
	switch s.state {
	case connectivity.Idle:
		s.sc.Connect() // keep a connection to every endpoint, like round_robin
	case connectivity.TransientFailure:
		b.connErr = st.ConnectionError
		b.cc.ResolveNow(resolver.ResolveNowOptions{})
	}
	b.publish()
}

// ExitIdle implements balancer.Balancer.
func (b *grpcBalancer) ExitIdle() {
	for _, s := range b.subs {
		if s.state == connectivity.Idle {
			s.sc.Connect()
		}
	}
}

// Close implements balancer.Balancer.
func (b *grpcBalancer) Close() {
	for ap, s := range b.subs {
		s.sc.Shutdown()
		delete(b.subs, ap)
	}
	if b.lbb != nil {
		b.lbb.Close()
	}
}

// publish hands the READY subchannels to the lb.Balancer and gives grpc a new
// picker and the channel's state: READY when a subchannel is; otherwise
// CONNECTING while one is trying (RPCs wait), TRANSIENT_FAILURE when none is
// (RPCs fail with the reason; once there, the channel stays until a
// subchannel is READY, as grpc's own policies do).
func (b *grpcBalancer) publish() {
	var ready []lb.EndpointInfo
	connecting := false
	for _, s := range b.subs {
		switch s.state {
		case connectivity.Ready:
			ready = append(ready, s.info)
		case connectivity.Idle, connectivity.Connecting:
			connecting = true
		}
	}
	b.lbb.Update(ready)
	switch {
	case len(ready) > 0:
		b.state = connectivity.Ready
		b.cc.UpdateState(balancer.State{ConnectivityState: connectivity.Ready, Picker: b.newPicker()})
	case connecting && b.state != connectivity.TransientFailure && len(b.subs) > 0:
		b.state = connectivity.Connecting
		b.cc.UpdateState(balancer.State{ConnectivityState: connectivity.Connecting, Picker: errPicker{balancer.ErrNoSubConnAvailable}})
	default:
		b.state = connectivity.TransientFailure
		err := errors.Join(b.resolverErr, b.connErr)
		if err == nil {
			err = fmt.Errorf("lbgrpc: no endpoint of %s is reachable", b.target)
		}
		b.cc.UpdateState(balancer.State{ConnectivityState: connectivity.TransientFailure, Picker: errPicker{err}})
	}
}

// newPicker builds the picker for the lb.Balancer's current endpoints.
func (b *grpcBalancer) newPicker() *picker {
	eps := b.lbb.Endpoints()
	p := &picker{lbb: b.lbb, hashKey: b.cfg.HashKey, subs: make(map[*lb.Endpoint]balancer.SubConn, len(eps)),
		mask: b.cfg.failureMask(), calls: b.calls}
	for _, e := range eps {
		if s := b.subs[e.AddrPort()]; s != nil {
			p.subs[e] = s.sc
		}
	}
	return p
}

// warnOnly passes on records of level Warn and above.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h warnOnly) WithAttrs(as []slog.Attr) slog.Handler { return warnOnly{h.Handler.WithAttrs(as)} }

func (h warnOnly) WithGroup(name string) slog.Handler { return warnOnly{h.Handler.WithGroup(name)} }
