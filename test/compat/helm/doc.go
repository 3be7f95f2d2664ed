// Package helm tests the Helm chart deploy/helm/clusterdns with the helm
// command of helm.sh/helm/v4 (built once per run from this module's go.mod,
// so its version is pinned like every other test dependency): `helm lint
// --strict` and `helm template` with the defaults and with the values CoreDNS
// chart users set; bad values fail with a message naming them; the rendered
// manifests are applied to a real kube-apiserver with server-side apply
// (strict field validation) and the rendered config file serves.
//
//	export CLUSTERDNS_APISERVER_BIN="$(bash test/apiserver/build.sh | tail -n 1)"
//	cd test/compat && go test ./helm/
package helm
