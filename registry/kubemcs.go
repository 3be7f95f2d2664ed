package registry

// The Kubernetes source's multi-cluster watches (KubeOptions.ClusterSet):
// ServiceImports (a CRD that may be missing) and the EndpointSlices
// labelled multicluster.kubernetes.io/service-name.

import (
	"context"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// mcsInformers returns the two watches of one namespace ("" for all).
func (k *KubeSource) mcsInformers(ns, where string, shared *interner) ([]informer, error) {
	imps, sls := "serviceimports"+where, "multicluster endpointslices"+where
	withMCSName := func(o *metav1.ListOptions) { o.LabelSelector = MCSServiceNameLabel }
	impInf, err := watchKind(k, imps, k.newInformer(imps, ResourceServiceImports, ns, &serviceImportObject{}, nil),
		convertServiceImport, equalImport,
		k.store.UpsertServiceImport, k.store.DeleteServiceImport)
	if err != nil {
		return nil, err
	}
	// A missing CRD counts as synced (nothing to import); the informer
	// keeps retrying and picks the imports up once it is installed.
	hasSynced, hasListed := impInf.synced, impInf.listed
	impInf.synced = func() bool { return hasSynced() || k.crdMissing.Load() }
	impInf.listed = func() bool { return hasListed() || k.crdMissing.Load() }
	slInf, err := watchKind(k, sls, k.newInformer(sls, ResourceEndpointSlices, ns, &discoveryv1.EndpointSlice{}, withMCSName),
		func(s *discoveryv1.EndpointSlice) (*EndpointSlice, error) {
			out, err := ConvertMCSEndpointSlice(s)
			if err == nil {
				shared.slice(out)
			}
			return out, err
		}, equalSlice,
		k.store.UpsertMCSEndpointSlice, k.store.DeleteMCSEndpointSlice)
	if err != nil {
		return nil, err
	}
	return []informer{impInf, slInf}, nil
}

// noteImports handles the result of a ServiceImport list or watch: a
// missing CRD, or RBAC that does not let this account read ServiceImports,
// is logged once (and once more when they become readable); it reports
// whether err was that case, which the API state does not count.
func (k *KubeSource) noteImports(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if err != nil && (apierrors.IsNotFound(err) || apierrors.IsForbidden(err)) {
		if k.crdMissing.CompareAndSwap(false, true) {
			why := "ServiceImport CRD (serviceimports.multicluster.x-k8s.io) not installed"
			if apierrors.IsForbidden(err) {
				// Older RBAC (no get, list, watch on serviceimports):
				// the rest of the cluster must still be served.
				why = "ServiceImports not readable (RBAC: get, list, watch serviceimports.multicluster.x-k8s.io)"
			}
			k.log.Warn(why+": the clusterset zone stays empty until they are; everything else is served", "err", err)
		}
		return true
	}
	if err == nil && k.crdMissing.CompareAndSwap(true, false) {
		k.log.Info("ServiceImports readable: watching them")
	}
	return false
}
