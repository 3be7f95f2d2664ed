package policy_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The policies are shared by the DNS server and the client library lb
// without the server depending on client code: the server must not import
// lb, and this package nothing of DNS, the network or HTTP.
func TestDependencies(t *testing.T) {
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	const mod = "github.com/clusterdns/clusterdns/"
	if d := deps(mod + "server"); slices.Contains(d, mod+"lb") {
		t.Errorf("server imports the client library %slb", mod)
	}
	for _, d := range deps(mod + "lb/policy") {
		if d == "net" || d == "net/http" || strings.HasPrefix(d, "github.com/miekg/dns") || strings.HasPrefix(d, "google.golang.org/grpc") {
			t.Errorf("lb/policy depends on %s", d)
		}
	}
}
