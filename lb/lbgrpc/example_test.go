package lbgrpc_test

import (
	"context"
	"fmt"
	"log"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	_ "github.com/clusterdns/clusterdns/lb/lbgrpc" // registers "clusterdns:///" and the clusterdns_* balancers
)

// Example is the README's "Using it from gRPC": a grpc-go client balanced by
// clusterdns (P2C on outstanding RPCs, re-resolved on TTL). It is compiled,
// not run: it needs a cluster DNS.
func Example() {
	conn, err := grpc.NewClient("clusterdns:///web.default.svc.cluster.local:8080",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"clusterdns_p2c":{}}]}`))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err)
}
