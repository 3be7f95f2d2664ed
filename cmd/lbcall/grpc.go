package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/clusterdns/clusterdns/lb"
	"github.com/clusterdns/clusterdns/lb/lbgrpc"
)

// grpcCall configures the calls of the gRPC mode: a target of the scheme
// "clusterdns" is called with the standard health service's Check (every
// server that registers grpc.health.v1 answers it) through package lbgrpc.
type grpcCall struct {
	target  string // clusterdns:///... (the --dns server goes in its authority when it has none)
	dns     string
	policy  string // an lb policy name; "" for p2c, weighted for SRV targets
	zone    string
	timeout time.Duration
}

// isGRPCTarget reports whether the argument selects the gRPC mode.
func isGRPCTarget(arg string) bool { return strings.HasPrefix(arg, lbgrpc.Scheme+":") }

// dial returns the channel; the balancer config is built from the flags.
func (g grpcCall) dial() (*grpc.ClientConn, error) {
	target := g.target
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", target, err)
	}
	if u.Host == "" && g.dns != "" {
		u.Host = g.dns
		target = u.String()
	}
	policy := g.policy
	if policy == "" {
		policy = "p2c"
		if strings.HasPrefix(strings.TrimPrefix(u.Path, "/"), "_") {
			policy = "weighted"
		}
	}
	p, err := lb.PolicyByName(policy)
	if err != nil {
		return nil, err
	}
	sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:{"zone":%q}}]}`, lbgrpc.BalancerPrefix+p.Name(), g.zone)
	return grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(sc))
}

// once makes one health check and returns the endpoint that answered (from
// the peer of the call) and the serving status.
func (g grpcCall) once(ctx context.Context, conn *grpc.ClientConn) (addr, st string, err error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	var p peer.Peer
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	if p.Addr != nil {
		addr = p.Addr.String()
	}
	if err != nil {
		if s, ok := status.FromError(err); ok && addr != "" {
			return addr, s.Code().String(), nil // the endpoint answered, with an error status
		}
		return "", "", err
	}
	return addr, resp.GetStatus().String(), nil
}
