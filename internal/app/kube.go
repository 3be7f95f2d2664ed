package app

import (
	"io/fs"
	"log/slog"

	"k8s.io/client-go/rest"

	"github.com/clusterdns/clusterdns/internal/health"
	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/server"
)

// kubeRESTConfig is registry.KubeRESTConfig for clusterdns, with room for
// the informers' start-up requests: client-go's default of 5 per second
// would delay the first sync when many namespaces are listed.
func kubeRESTConfig(cfg *Config) (*rest.Config, string, error) {
	rc, from, err := registry.KubeRESTConfig(cfg.Source, cfg.Kubeconfig, "clusterdns")
	if rc != nil && rc.QPS == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	return rc, from, err
}

// newKubeSource builds the Kubernetes source feeding store. Pods are watched
// only when something answers from them: verified pod records, autopath.
func newKubeSource(cfg *Config, rc *rest.Config, store *registry.Store, log *slog.Logger) (*registry.KubeSource, error) {
	client, err := registry.NewKubeAPI(rc)
	if err != nil {
		return nil, err
	}
	return registry.NewKubeSource(client, store, registry.KubeOptions{
		Namespaces:  cfg.Namespaces,
		Pods:        cfg.Pods == server.PodsVerified || cfg.Autopath,
		SyncTimeout: cfg.SyncTimeout,
		ClusterSet:  cfg.ClusterSetZone != "",
		Logger:      log,
	}), nil
}

// warnClusterFiles logs cluster manifests found in the zones folder while
// the cluster comes from the API server: they are not read.
func warnClusterFiles(fsys fs.FS, dir string, log *slog.Logger) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return
	}
	var ignored []string
	for _, e := range entries {
		if !e.IsDir() && registry.IsClusterFile(e.Name()) {
			ignored = append(ignored, e.Name())
		}
	}
	if len(ignored) > 0 {
		log.Warn("cluster manifests in zones_dir are ignored: the cluster comes from the Kubernetes API; only *.zone files are served",
			"dir", dir, "files", ignored)
	}
}

// startHealth binds the /healthz and /ready endpoints (nil when disabled)
// and serves them in the background. An address given by the user must
// bind; the default one may be taken (another clusterdns on this host, a
// test), in which case the server runs without the endpoints and says so.
func startHealth(cfg *Config, ready func() bool, log *slog.Logger) (*health.Server, error) {
	if cfg.HealthListen == "" {
		return nil, nil
	}
	hs, err := health.Listen(cfg.HealthListen, ready, log)
	if err != nil {
		if cfg.HealthListen == defaultHealthListen {
			log.Warn("health endpoints not served: the default address cannot be bound; set health_listen", "err", err)
			return nil, nil
		}
		return nil, err
	}
	go func() {
		if err := hs.Serve(); err != nil {
			log.Error("health endpoints stopped", "err", err)
		}
	}()
	log.Info("health endpoints", "addr", hs.Addr().String(), "paths", "/healthz /ready")
	return hs, nil
}
