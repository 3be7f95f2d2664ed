package server

import (
	"strings"
	"testing"

	"github.com/clusterdns/clusterdns/lb"
	"github.com/clusterdns/clusterdns/zones"
)

// FuzzZoneFile: any master file parses or is refused naming the file,
// and what parses indexes without a panic.
func FuzzZoneFile(f *testing.F) {
	example, _ := zones.Default.ReadFile("example.test.zone")
	f.Add(example)
	f.Add([]byte("$ORIGIN a.test.\n@ IN SOA ns. h. 1 2 3 4 5\nx IN CNAME y\n*.w IN A 1.2.3.4\n"))
	f.Add([]byte("@ 3600 IN SOA ns h 1 2 3 4 5\n@ IN MX 10 mail\nmail IN AAAA ::1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pz, err := parseZoneFile("z.test.zone", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "z.test.zone") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		zf := &ZoneFiles{files: map[string]parsedZone{"z.test.zone": pz}}
		zf.index(func(string) lb.Policy { return lb.RoundRobin() }) // may refuse, must not panic
	})
}
