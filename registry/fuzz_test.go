package registry

import (
	"strings"
	"testing"

	"github.com/clusterdns/clusterdns/zones"
)

// FuzzParseManifests: any bytes give objects or an error naming file:line,
// never a panic.
func FuzzParseManifests(f *testing.F) {
	example, _ := zones.Default.ReadFile("cluster.yaml")
	f.Add(example)
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- kind: Service\n  metadata: {name: a}\n  spec: {clusterIP: 10.0.0.1}\n"))
	f.Add([]byte("kind: EndpointSlice\nmetadata: {name: s, labels: {kubernetes.io/service-name: a}}\naddressType: IPv6\nendpoints: [{addresses: ['::1']}]\n"))
	f.Add([]byte("---\n---\n# only comments\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := ParseManifests("f.yaml", data)
		if err != nil && !strings.HasPrefix(err.Error(), "f.yaml:") {
			t.Fatalf("error without file:line: %v", err)
		}
	})
}
