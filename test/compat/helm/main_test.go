package helm

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/clusterdns/clusterdns/internal/testbin"
)

var (
	// helmBin is the helm command, built by TestMain.
	helmBin string
	// chartDir is deploy/helm/clusterdns.
	chartDir string
	// repoRoot is the repository's root folder.
	repoRoot string
)

func TestMain(m *testing.M) {
	flag.Parse()
	root, err := testbin.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "helm:", err)
		os.Exit(1)
	}
	repoRoot, chartDir = root, filepath.Join(root, "deploy", "helm", "clusterdns")
	tmp, err := os.MkdirTemp("", "clusterdns-helm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "helm:", err)
		os.Exit(1)
	}
	helmBin = filepath.Join(tmp, "helm")
	// The version go.mod pins; Go's build cache makes later builds a link.
	build := exec.Command("go", "build", "-o", helmBin, "helm.sh/helm/v4/cmd/helm")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "helm: go build helm.sh/helm/v4/cmd/helm: %v\n%s", err, out)
		os.RemoveAll(tmp)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}
