package registry

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/clusterdns/clusterdns/internal/testbin"
)

// A missing ServiceImport CRD and RBAC that does not let the account read
// ServiceImports are both logged once and count as synced, so the rest of
// the cluster is served; once the imports are readable that is logged, and
// any other error is left to the API state.
func TestNoteImportsUnreadable(t *testing.T) {
	gr := schema.GroupResource{Group: "multicluster.x-k8s.io", Resource: "serviceimports"}
	for _, c := range []struct {
		name string
		err  error
		log  string
	}{
		{"crd missing", apierrors.NewNotFound(gr, ""), "not installed"},
		{"forbidden", apierrors.NewForbidden(gr, "", errors.New("RBAC")), "not readable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out testbin.LogBuffer
			k := &KubeSource{log: slog.New(slog.NewTextHandler(&out, nil))}
			ctx := context.Background()
			for range 3 {
				if !k.noteImports(ctx, c.err) {
					t.Fatalf("%v: not taken as unreadable imports", c.err)
				}
			}
			if !k.crdMissing.Load() {
				t.Fatal("not counted as synced")
			}
			if n := strings.Count(out.String(), c.log); n != 1 {
				t.Fatalf("logged %d times, want once:\n%s", n, out.String())
			}
			if k.noteImports(ctx, nil) || k.crdMissing.Load() || !strings.Contains(out.String(), "ServiceImports readable") {
				t.Fatalf("readable again not noted:\n%s", out.String())
			}
			if k.noteImports(ctx, errors.New("connection refused")) {
				t.Fatal("another error taken as unreadable imports")
			}
		})
	}
}
