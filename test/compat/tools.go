//go:build tools

// Package tools pins the helm command that the chart test builds and runs
// (`helm lint`, `helm template`), so that go.mod and go.sum record every
// module it needs.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
