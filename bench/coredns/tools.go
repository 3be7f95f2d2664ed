//go:build tools

// Package tools pins the CoreDNS command that build.sh builds, so that
// go.mod and go.sum record every module it needs.
package tools

import (
	_ "github.com/coredns/coredns"
)
