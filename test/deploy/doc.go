// Package deploy tests the cluster add-on: the kustomize base and overlays
// in deploy/ (they build, their objects are what the issue asks for, a real
// kube-apiserver accepts them, and the ServiceAccounts can read and not
// write), deploy/build-binaries.sh (static binaries) and the Dockerfile.
//
//	export CLUSTERDNS_APISERVER_BIN="$(bash test/apiserver/build.sh | tail -n 1)"
//	go test ./test/deploy/
package deploy
