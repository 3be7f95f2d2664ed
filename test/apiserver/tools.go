//go:build tools

// Package tools pins the commands that build.sh builds, so that go.mod and
// go.sum record every module they need. build.sh builds them with `go build`
// from this module: kube-apiserver and etcd by default, kube-proxy on demand.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
