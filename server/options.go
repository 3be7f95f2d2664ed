package server

import (
	"log/slog"
	"net/netip"

	"github.com/clusterdns/clusterdns/registry"
)

// The handler's configuration.

// PodMode selects how a-b-c-d.<ns>.pod.<zone> names are answered.
type PodMode string

// The pod record modes (CoreDNS `pods`).
const (
	PodsDisabled PodMode = "disabled" // NXDOMAIN
	PodsInsecure PodMode = "insecure" // any well-formed name answers its IP
	PodsVerified PodMode = "verified" // only when a pod with that IP is in that namespace
)

// Options configure the answers. Domains are the cluster domains served
// (the first one names PTR targets); TTL applies to cluster records and
// NegativeTTL to the SOA of negative answers.
type Options struct {
	Domains []string
	// ClusterSetZone is the multi-cluster services zone (clusterset.local,
	// clusterset.go) answered from the snapshot's ServiceImports; "" is off.
	ClusterSetZone string
	TTL            uint32
	NegativeTTL    uint32
	Pods           PodMode
	// DNSService is the service whose ClusterIP is the glue of the zones'
	// NS name (kube-system/kube-dns by default).
	DNSService registry.Key
	// ReverseZones are the reverse zones answered with authority (CIDRs or
	// in-addr.arpa/ip6.arpa names; see ReverseZones): inside them an
	// unknown address is NXDOMAIN, not forwarded.
	ReverseZones []string
	// Fallback answers names outside every served zone; nil answers REFUSED.
	Fallback Fallback
	// RecursionFrom lists the client networks whose questions outside the
	// served zones go to Fallback; others get REFUSED (not an open resolver).
	RecursionFrom []netip.Prefix
	// TransferFrom lists the client networks allowed to ask for zone
	// transfers (AXFR, IXFR). Transfers are not implemented: those clients
	// get NOTIMP, every other client REFUSED.
	TransferFrom []netip.Prefix
	// Autopath completes a pod's search path on the server (CoreDNS
	// autopath): needs pods known by IP (pods: verified, or pods in files).
	Autopath bool
	// QueryLog, when set, receives one line per well-formed query (client,
	// name, type, transport, then its outcome and zone); QueryLogSample
	// logs one query in N (0 or 1: every query).
	QueryLog       *slog.Logger
	QueryLogSample uint32
	// AnswerOrder is how the A/AAAA records of a name are ordered per query:
	// "off", "round_robin" (the default) or "random". ZoneOrder overrides
	// it per zone (origin → policy); the zone "." stands for forwarded
	// answers.
	AnswerOrder string
	ZoneOrder   map[string]string
	// Metrics receives the handler's counts; nil makes new ones. Handlers
	// that replace one another on a configuration reload share one.
	Metrics *Metrics
	// Hosts, when set, answers the names of its entries before the
	// cluster and zone files (hosts.go).
	Hosts *Hosts
	// Rewrite, when set, rewrites question names before they are answered
	// (rewrite.go).
	Rewrite *Rewriter
}
