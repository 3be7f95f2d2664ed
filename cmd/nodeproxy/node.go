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

// nodeInfo is what the node proxy reads from its Node.
type nodeInfo struct {
	Zone     string       // label topology.kubernetes.io/zone
	IPs      []netip.Addr // InternalIP addresses
	Eligible bool         // not being deleted, no ToBeDeletedByClusterAutoscaler taint
}

// toBeDeletedTaint is the cluster autoscaler's taint on a node it is
// about to remove.
const toBeDeletedTaint = "ToBeDeletedByClusterAutoscaler"

// fetchNode reads this node's Node object. It blocks for one API request
// (10 s at most).
func fetchNode(ctx context.Context, rc *rest.Config, name string) (nodeInfo, error) {
	var info nodeInfo
	client, err := rest.HTTPClientFor(rc)
	if err != nil {
		return info, fmt.Errorf("Kubernetes HTTP client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rc.Host+"/api/v1/nodes/"+url.PathEscape(name), nil)
	if err != nil {
		return info, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return info, fmt.Errorf("get node %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return info, fmt.Errorf("get node %s: %s", name, resp.Status)
	}
	var node corev1.Node
	if err := json.NewDecoder(resp.Body).Decode(&node); err != nil {
		return info, fmt.Errorf("decode node %s: %w", name, err)
	}
	for _, a := range node.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			info.IPs = append(info.IPs, ip.Unmap())
		}
	}
	info.Zone = node.Labels[corev1.LabelTopologyZone]
	info.Eligible = node.DeletionTimestamp == nil
	for _, t := range node.Spec.Taints {
		if t.Key == toBeDeletedTaint {
			info.Eligible = false
		}
	}
	return info, nil
}

// followNode re-reads the Node every minute until ctx ends: a new zone
// label goes to the Proxier with a full resync (unless --node-zone fixed
// it), its eligibility to /healthz.
func followNode(ctx context.Context, log *slog.Logger, rc *rest.Config, name, zone string, fixedZone bool, p *nodeproxy.Proxier, t *nodeproxy.Tracker, h *nodeproxy.ProxyHealth) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		info, err := fetchNode(ctx, rc, name)
		if err != nil {
			log.Warn("Node not read: keeping its zone and eligibility", "node", name, "zone", zone, "err", err)
			continue
		}
		h.SetNodeEligible(info.Eligible)
		z := info.Zone
		if fixedZone || z == zone {
			continue
		}
		log.Info("node zone changed: resyncing", "from", zone, "to", z)
		zone = z
		p.SetZone(z)
		t.RequestFull()
	}
}
