// Package zones embeds the example cluster and zone files that clusterdns
// serves when it is started without --zones-dir (go run ./cmd/clusterdns).
package zones

import "embed"

// Default holds the files of this folder: *.yaml (the example cluster as
// Kubernetes manifests) and *.zone (RFC 1035 master files). The server's
// constructor reads it; nothing writes it.
//
//go:embed *.yaml *.zone
var Default embed.FS
