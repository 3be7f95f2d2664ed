package deploy

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// repoRoot is the repository's top folder (this package is test/deploy).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return root
}

// build runs kustomize (the krusty API, as `kubectl apply -k` does) on dir
// and returns its objects in order.
func build(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatalf("kustomize build %s: %s: %v", dir, r.CurId(), err)
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out
}

// objects indexes built objects by "Kind/name".
type objects map[string]*unstructured.Unstructured

func index(objs []*unstructured.Unstructured) objects {
	m := objects{}
	for _, o := range objs {
		m[o.GetKind()+"/"+o.GetName()] = o
	}
	return m
}

func (m objects) keys() []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// get converts the object kind/name into out (a typed API object).
func (m objects) get(t testing.TB, kind, name string, out any) {
	t.Helper()
	u, ok := m[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s/%s among %v", kind, name, m.keys())
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s/%s: %v", kind, name, err)
	}
}

// generated returns the object of kind whose name is prefix plus
// kustomize's content hash ("clusterdns-<hash>").
func (m objects) generated(t testing.TB, kind, prefix string) *unstructured.Unstructured {
	t.Helper()
	re := regexp.MustCompile("^" + regexp.QuoteMeta(prefix) + "-[a-z0-9]{10}$")
	var found *unstructured.Unstructured
	for _, u := range m {
		if u.GetKind() == kind && re.MatchString(u.GetName()) {
			if found != nil {
				t.Fatalf("two %s named %s-<hash>: %s and %s", kind, prefix, found.GetName(), u.GetName())
			}
			found = u
		}
	}
	if found == nil {
		t.Fatalf("no %s named %s-<hash> among %v", kind, prefix, m.keys())
	}
	return found
}

// readmeKeys returns the configuration keys documented in README.md's
// configuration table (the rows "| `key` | default | meaning |").
func readmeKeys(t testing.TB) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `([a-z_]+)`( \\*restart\\*)? \\|")
	keys := map[string]bool{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## Configuration"
		case in && strings.HasPrefix(line, "### "):
			in = false
		case in:
			if m := row.FindStringSubmatch(line); m != nil {
				keys[m[1]] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(keys) < 5 || !keys["listen"] {
		t.Fatalf("README.md: configuration table not found (keys %v)", keys)
	}
	return keys
}

func describe(u *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", u.GroupVersionKind(), u.GetNamespace(), u.GetName())
}
