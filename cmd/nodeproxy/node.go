package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	"github.com/clusterdns/clusterdns/nodeproxy"
)

// fetchNode reads this node's Node object: its topology zone label and its
// InternalIP addresses. It blocks for one API request (10 s at most).
func fetchNode(ctx context.Context, rc *rest.Config, name string) (string, []netip.Addr, error) {
	client, err := rest.HTTPClientFor(rc)
	if err != nil {
		return "", nil, fmt.Errorf("Kubernetes HTTP client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rc.Host+"/api/v1/nodes/"+url.PathEscape(name), nil)
	if err != nil {
		return "", nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("get node %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("get node %s: %s", name, resp.Status)
	}
	var node corev1.Node
	if err := json.NewDecoder(resp.Body).Decode(&node); err != nil {
		return "", nil, fmt.Errorf("decode node %s: %w", name, err)
	}
	var ips []netip.Addr
	for _, a := range node.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			ips = append(ips, ip.Unmap())
		}
	}
	return node.Labels[corev1.LabelTopologyZone], ips, nil
}

// followZone re-reads the Node's zone label every minute until ctx ends;
// a change is handed to the Proxier with a full resync.
func followZone(ctx context.Context, log *slog.Logger, rc *rest.Config, name, zone string, p *nodeproxy.Proxier, t *nodeproxy.Tracker) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		z, _, err := fetchNode(ctx, rc, name)
		if err != nil {
			log.Warn("Node not read: keeping its zone", "node", name, "zone", zone, "err", err)
			continue
		}
		if z == zone {
			continue
		}
		log.Info("node zone changed: resyncing", "from", zone, "to", z)
		zone = z
		p.SetZone(z)
		t.RequestFull()
	}
}
