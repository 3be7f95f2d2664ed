package nodeproxy

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// StaleFlow names UDP conntrack entries that still steer packets to an
// endpoint that is gone: UDP has no connection end, so without deleting the
// entry a client that keeps its source port keeps talking to the old
// endpoint for as long as it sends.
type StaleFlow struct {
	// VIP is the ClusterIP the flows were sent to; invalid for NodePort
	// flows, which match on the port alone.
	VIP      netip.Addr
	Port     int32      // the service port, or the node port
	Endpoint netip.Addr // the endpoint that is gone
}

type staleFlow = StaleFlow

// Conntrack deletes stale UDP flows. The Proxier calls it after a
// transaction has landed (so no new flow can pick the endpoint again), on
// the sync goroutine; it may block for the time of a netlink dump.
type Conntrack interface {
	DeleteUDP(ctx context.Context, f StaleFlow) error
}

// ConntrackTool is the Conntrack of a node: it runs the conntrack(8) tool
// (conntrack-tools), found on PATH unless Path is set.
type ConntrackTool struct {
	Path string
}

// DeleteUDP runs `conntrack -D -p udp` for the flows to f's endpoint. No
// matching entry is not an error.
func (c ConntrackTool) DeleteUDP(ctx context.Context, f StaleFlow) error {
	path := c.Path
	if path == "" {
		path = "conntrack"
	}
	args := []string{"-D", "-f", "ipv4", "-p", "udp"}
	if f.Endpoint.Is6() {
		args[2] = "ipv6"
	}
	if f.VIP.IsValid() {
		args = append(args, "--orig-dst", f.VIP.String())
	}
	args = append(args, "--orig-port-dst", strconv.Itoa(int(f.Port)), "--reply-src", f.Endpoint.String())
	cmd := exec.CommandContext(ctx, path, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if strings.Contains(out.String(), " 0 flow entries") {
			return nil
		}
		return fmt.Errorf("conntrack %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// staleFlows lists the UDP flows of old that next (nil when the port is
// gone) no longer serves.
func staleFlows(old, next *servicePort) []StaleFlow {
	if old.ID.Proto != "udp" {
		return nil
	}
	var out []StaleFlow
	gone := func(was, now []netip.AddrPort, vip netip.Addr, port int32, same bool) {
		for _, ep := range was {
			if same && slices.Contains(now, ep) {
				continue
			}
			f := StaleFlow{VIP: vip, Port: port, Endpoint: ep.Addr()}
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	if next == nil {
		next = &servicePort{}
	}
	gone(old.Endpoints, next.Endpoints, old.VIP, old.ID.Port, old.VIP == next.VIP)
	wasExt := append(slices.Clip(old.ClusterEndpoints), old.LocalEndpoints...)
	nowExt := append(slices.Clip(next.ClusterEndpoints), next.LocalEndpoints...)
	for _, a := range old.External {
		gone(wasExt, nowExt, a, old.ID.Port, slices.Contains(next.External, a))
	}
	if old.NodePort > 0 {
		gone(wasExt, nowExt, netip.Addr{}, old.NodePort, old.NodePort == next.NodePort)
	}
	return out
}

// clearStale deletes the stale flows, logging failures: the rules are
// right already, a leftover flow only delays the move of one client.
func (p *Proxier) clearStale(ctx context.Context, flows []StaleFlow) {
	for _, f := range flows {
		if err := p.ct.DeleteUDP(ctx, f); err != nil {
			p.log.Warn("stale UDP conntrack entries not deleted", "vip", f.VIP, "port", f.Port,
				"endpoint", f.Endpoint, "err", err)
		}
	}
}
