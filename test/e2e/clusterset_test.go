package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

const (
	checkoutFQDN = "checkout.apps.svc.clusterset.local."
	ledgerFQDN   = "ledger.data.svc.clusterset.local."
)

// TestClusterSetDig asks real dig for the MCS names of the example
// cluster's ServiceImports (zones/cluster.yaml), served from the file
// source with the default clusterset_zone, then adds an import to the
// folder and waits for it to be answered.
func TestClusterSetDig(t *testing.T) {
	requireTools(t, "dig")
	dir := copyZones(t)
	s := startServer(t, dir)

	s.dig(t, "dns-version.clusterset.local", "TXT").wantRecords(t, "answer", `dns-version.clusterset.local. 5 IN TXT "1.0.0"`)
	r := s.dig(t, "checkout.apps.svc.clusterset.local", "A")
	r.wantStatus(t, "NOERROR")
	r.wantFlags(t, "aa")
	r.wantRecords(t, "answer", rr("%s %d IN A 10.112.0.10", checkoutFQDN, clusterTTL))
	r = s.dig(t, "_http._tcp.checkout.apps.svc.clusterset.local", "SRV")
	r.wantRecords(t, "answer", rr("_http._tcp.%s %d IN SRV 0 100 80 %s", checkoutFQDN, clusterTTL, checkoutFQDN))
	r.wantContains(t, "additional", rr("%s %d IN A 10.112.0.10", checkoutFQDN, clusterTTL))
	s.dig(t, "checkout.apps.svc.clusterset.local", "AAAA").wantNegative(t, "NOERROR", "clusterset.local")

	s.dig(t, "ledger.data.svc.clusterset.local", "A").wantRecords(t, "answer",
		rr("%s %d IN A 10.245.1.10", ledgerFQDN, clusterTTL), rr("%s %d IN A 10.246.1.10", ledgerFQDN, clusterTTL))
	s.dig(t, "ledger-0.west.ledger.data.svc.clusterset.local", "A").wantRecords(t, "answer",
		rr("ledger-0.west.%s %d IN A 10.246.1.10", ledgerFQDN, clusterTTL))
	s.dig(t, "_pg._tcp.ledger.data.svc.clusterset.local", "SRV").wantRecords(t, "answer",
		rr("_pg._tcp.%s %d IN SRV 0 100 5432 ledger-0.east.%s", ledgerFQDN, clusterTTL, ledgerFQDN),
		rr("_pg._tcp.%s %d IN SRV 0 100 5432 ledger-0.west.%s", ledgerFQDN, clusterTTL, ledgerFQDN))
	s.dig(t, "ledger-1.east.ledger.data.svc.clusterset.local", "A").wantNegative(t, "NXDOMAIN", "clusterset.local")
	s.dig(t, "east.ledger.data.svc.clusterset.local", "A").wantNegative(t, "NOERROR", "clusterset.local")
	s.dig(t, "nothere.data.svc.clusterset.local", "A").wantNegative(t, "NXDOMAIN", "clusterset.local")
	s.dig(t, "svc.clusterset.local", "A").wantNegative(t, "NOERROR", "clusterset.local")
	s.dig(t, "-x", "10.112.0.10").wantRecords(t, "answer", rr("10.0.112.10.in-addr.arpa. %d IN PTR %s", clusterTTL, checkoutFQDN))
	s.dig(t, "-x", "10.245.1.10").wantRecords(t, "answer", rr("10.1.245.10.in-addr.arpa. %d IN PTR ledger-0.east.%s", clusterTTL, ledgerFQDN))

	// A new import in the folder is answered once the file is read.
	const added = `apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceImport
metadata: {name: cart, namespace: apps}
spec:
  type: ClusterSetIP
  ips: [10.112.0.20, fd00:112::20]
  ports: [{name: http, protocol: TCP, port: 8080}]
`
	if err := os.WriteFile(filepath.Join(dir, "imports.yaml"), []byte(added), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the new import answered", func() (bool, string) {
		r, err := s.digTry("cart.apps.svc.clusterset.local", "AAAA")
		if err != nil {
			return false, err.Error()
		}
		return r.status == "NOERROR" && len(r.answer) == 1, r.String()
	})
	s.dig(t, "cart.apps.svc.clusterset.local", "AAAA").wantRecords(t, "answer", rr("cart.apps.svc.clusterset.local. %d IN AAAA fd00:112::20", clusterTTL))
	// The imports already served are still there.
	s.dig(t, "checkout.apps.svc.clusterset.local", "A").wantRecords(t, "answer", rr("%s %d IN A 10.112.0.10", checkoutFQDN, clusterTTL))
}

// TestClusterSetZoneOff: with clusterset_zone empty the names are not
// served (refused, as any name outside the served zones without a
// fallback for this client).
func TestClusterSetZoneOff(t *testing.T) {
	requireTools(t, "dig")
	s := startServer(t, copyZones(t), "--clusterset-zone", "")
	r := s.dig(t, "checkout.apps.svc.clusterset.local", "A")
	if r.status != "REFUSED" || len(r.answer) != 0 {
		t.Fatalf("clusterset name answered with the zone off\n%s", r)
	}
}
