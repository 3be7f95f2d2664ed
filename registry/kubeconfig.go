package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeRESTConfig decides where the cluster comes from, for both binaries
// (clusterdns and nodeproxy). source is "files", "kubernetes" or "auto". It
// returns the API server's client configuration and a description of where
// it was found, or nil when the cluster comes from files: with source files,
// or with source auto when no kubeconfig is named (kubeconfig, then
// $KUBECONFIG) and the process does not run in a pod. A kubeconfig that
// cannot be read is an error. The configuration asks for protobuf and
// identifies itself as userAgent.
func KubeRESTConfig(source, kubeconfig, userAgent string) (*rest.Config, string, error) {
	if source == "files" {
		return nil, "", nil
	}
	var rc *rest.Config
	var from string
	var err error
	switch env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar); {
	case kubeconfig != "":
		from = "kubeconfig " + kubeconfig
		rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	case env != "":
		from = "kubeconfig $KUBECONFIG=" + env
		rules := &clientcmd.ClientConfigLoadingRules{Precedence: filepath.SplitList(env)}
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "" && os.Getenv("KUBERNETES_SERVICE_PORT") != "":
		from = "in-cluster service account"
		rc, err = rest.InClusterConfig()
	default:
		if source == "kubernetes" {
			return nil, "", errors.New("source kubernetes: no kubeconfig (--kubeconfig, $KUBECONFIG) and not running in a pod")
		}
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("Kubernetes API (%s): %w", from, err)
	}
	rc.UserAgent = userAgent
	// Protobuf costs the API server and us less than JSON for big lists.
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	return rc, from, nil
}
