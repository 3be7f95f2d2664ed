package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testdns"
)

// kubeadmCorefile is the Corefile kubeadm installs, with UPSTREAM where
// kubeadm has /etc/resolv.conf (a resolv.conf cannot name a port, and the
// tests send nothing beyond loopback).
const kubeadmCorefile = `.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . UPSTREAM {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
`

// importConfig runs `clusterdns <cmd> FILE` on text and returns the path
// of the configuration it printed and what it said on stderr. The command
// must exit 0.
func importConfig(t *testing.T, cmd, text string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "input")
	if err := os.WriteFile(in, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, serverBin, cmd, in)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("clusterdns %s: %v\nstdout:\n%s\nstderr:\n%s", cmd, err, stdout.String(), stderr.String())
	}
	out := filepath.Join(dir, "clusterdns.yaml")
	if err := os.WriteFile(out, stdout.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("clusterdns %s printed:\n%s\nstderr:\n%s", cmd, stdout.String(), stderr.String())
	return out, stderr.String()
}

// launchImported starts the server with an imported configuration. Only
// what a test machine must change is given on the command line (flags beat
// the file): the address (a free loopback port instead of :53), the files
// source with the example cluster, and loopback health and metrics ports.
func launchImported(t *testing.T, cfg string) *server {
	t.Helper()
	return launchImportedDir(t, cfg, copyZones(t))
}

// launchImportedDir is launchImported serving the zones folder dir.
func launchImportedDir(t *testing.T, cfg, dir string) *server {
	t.Helper()
	return launch(t, launchOpts{dir: dir, args: func(port int) ([]string, []string) {
		return []string{"--config", cfg,
			"--listen", fmt.Sprintf("127.0.0.1:%d", port),
			"--source", "files", "--zones-dir", dir,
			"--health-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
			"--log-level", "debug"}, nil
	}})
}

// upstream is a loopback DNS server that answers A with addr (TTL 300)
// and PTR with ptr, and records the names it was asked.
type upstream struct {
	*testdns.Server
	mu    sync.Mutex
	names []string
}

func startUpstream(t *testing.T, addr, ptr string) *upstream {
	u := &upstream{}
	u.Server = testdns.Start(t, func(w dns.ResponseWriter, r *dns.Msg) {
		q := r.Question[0]
		u.mu.Lock()
		u.names = append(u.names, strings.ToLower(q.Name))
		u.mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(r)
		var rr dns.RR
		switch q.Qtype {
		case dns.TypeA:
			rr, _ = dns.NewRR(fmt.Sprintf("%s 300 IN A %s", q.Name, addr))
		case dns.TypePTR:
			rr, _ = dns.NewRR(fmt.Sprintf("%s 300 IN PTR %s", q.Name, ptr))
		}
		if rr != nil {
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m)
	})
	return u
}

func (u *upstream) asked() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.names...)
}

// TestImportKubeadmCorefile converts kubeadm's default Corefile with the
// real binary, starts the real binary with the output, and checks with
// dig that it answers as that Corefile says: cluster records with TTL 30,
// negative answers with a 30 s SOA, insecure pod records, PTRs of cluster
// addresses, unknown PTRs and outside names forwarded (fallthrough), the
// forwarded answer cached at most 30 s, and A records rotated
// (loadbalance).
func TestImportKubeadmCorefile(t *testing.T) {
	requireTools(t, "dig")
	up := startUpstream(t, "192.0.2.10", "outside.example.")
	cfg, stderr := importConfig(t, "import-corefile", strings.ReplaceAll(kubeadmCorefile, "UPSTREAM", up.Addr))
	if strings.Contains(stderr, "not converted") {
		t.Fatalf("kubeadm Corefile not fully converted:\n%s", stderr)
	}
	s := launchImported(t, cfg)

	s.dig(t, webName, "A").wantRecords(t, "answer", webName+". 30 IN A 10.96.0.100")
	r := s.dig(t, "nothere.default.svc.cluster.local", "A")
	r.wantStatus(t, "NXDOMAIN")
	r.wantFlags(t, "aa")
	if len(r.authority) != 1 || r.authority[0].Header().Ttl != 30 || r.authority[0].(*dns.SOA).Minttl != 30 {
		t.Errorf("negative answer: want the SOA with TTL and minimum 30 (kubernetes ttl 30)\n%s", r)
	}
	s.dig(t, "10-244-1-20.data.pod.cluster.local", "A").wantRecords(t, "answer", "10-244-1-20.data.pod.cluster.local. 30 IN A 10.244.1.20")
	s.dig(t, "-x", "10.96.0.100").wantRecords(t, "answer", "100.0.96.10.in-addr.arpa. 30 IN PTR "+webName+".")

	// fallthrough in-addr.arpa: an address the cluster does not have is
	// asked upstream.
	s.dig(t, "-x", "192.0.2.77").wantRecords(t, "answer", "77.2.0.192.in-addr.arpa. 300 IN PTR outside.example.")
	// forward . UPSTREAM and cache 30.
	s.dig(t, "www.example.org", "A").wantContains(t, "answer", "www.example.org. 300 IN A 192.0.2.10")
	before := len(up.asked())
	r = s.dig(t, "www.example.org", "A")
	if len(r.answer) != 1 || r.answer[0].Header().Ttl > 30 {
		t.Errorf("cached answer: want one record with TTL <= 30 (cache 30)\n%s", r)
	}
	if n := len(up.asked()); n != before {
		t.Errorf("second question went upstream (%d -> %d questions): not cached", before, n)
	}
	if got := up.asked(); !contains(got, "77.2.0.192.in-addr.arpa.") || !contains(got, "www.example.org.") || contains(got, webName+".") {
		t.Errorf("upstream was asked %v: want the unknown PTR and the outside name, never a cluster name", got)
	}

	// loadbalance: the two cassandra addresses come in both orders.
	firsts := map[string]bool{}
	for i := 0; i < 6 && len(firsts) < 2; i++ {
		r := s.dig(t, "cassandra.data.svc.cluster.local", "A")
		if len(r.answer) != 2 {
			t.Fatalf("cassandra: %d records\n%s", len(r.answer), r)
		}
		firsts[r.answer[0].(*dns.A).A.String()] = true
	}
	if len(firsts) != 2 {
		t.Errorf("loadbalance: the first address was always %v", firsts)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestImportCorefileAdditions converts a Corefile with the common
// additions to kubeadm's — a stub domain block, hosts entries with
// fallthrough, name rewrites, a tuned cache — and checks the served
// answers with dig.
func TestImportCorefileAdditions(t *testing.T) {
	requireTools(t, "dig")
	up := startUpstream(t, "192.0.2.10", "outside.example.")
	corp := startUpstream(t, "10.0.0.99", "corp-host.corp.example.")
	corefile := `.:53 {
    errors
    health
    hosts {
        10.0.0.10 db.legacy.example db
        fd00::10 db.legacy.example
        fallthrough
    }
    rewrite name api.legacy.example web-server-service.default.svc.cluster.local
    rewrite name regex ^(.+)\.apps\.legacy\.example\.$ {1}.apps.svc.cluster.local
    rewrite name suffix .corp.internal .svc.cluster.local
    rewrite name prefix legacy-web. web-server-service.
    rewrite name substring -old.data. .data.
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . ` + up.Addr + `
    cache 30 {
        prefetch 2 1m 10%
        serve_stale 1h verify
    }
    loadbalance
}
corp.example:53 {
    errors
    cache 30
    forward . ` + corp.Addr + `
}
`
	cfg, stderr := importConfig(t, "import-corefile", corefile)
	if strings.Contains(stderr, "not converted") {
		t.Fatalf("not fully converted:\n%s", stderr)
	}
	s := launchImported(t, cfg)

	// hosts: A, AAAA, NODATA for another type, PTR; fallthrough leaves
	// the cluster and the upstream their names.
	r := s.dig(t, "db.legacy.example", "A")
	r.wantRecords(t, "answer", "db.legacy.example. 3600 IN A 10.0.0.10")
	r.wantFlags(t, "aa")
	s.dig(t, "DB.legacy.example", "AAAA").wantRecords(t, "answer", "db.legacy.example. 3600 IN AAAA fd00::10")
	r = s.dig(t, "db.legacy.example", "MX")
	r.wantStatus(t, "NOERROR")
	r.wantRecords(t, "answer")
	s.dig(t, "-x", "10.0.0.10").wantRecords(t, "answer", "10.0.0.10.in-addr.arpa. 3600 IN PTR db.legacy.example.", "10.0.0.10.in-addr.arpa. 3600 IN PTR db.")
	s.dig(t, webName, "A").wantRecords(t, "answer", webName+". 5 IN A 10.96.0.100")

	// rewrite name: exact and regex, answered under the asked name.
	r = s.dig(t, "Api.Legacy.Example", "A")
	r.wantQuestion(t, "Api.Legacy.Example.", "A")
	r.wantRecords(t, "answer", "api.legacy.example. 5 IN A 10.96.0.100")
	if r.answer[0].Header().Name != "Api.Legacy.Example." {
		t.Errorf("rewritten answer's owner %q, want the asked spelling", r.answer[0].Header().Name)
	}
	r = s.dig(t, "search.apps.legacy.example", "A")
	r.wantContains(t, "answer", "search.apps.legacy.example. 5 IN CNAME www.example.test.", "www.example.test. 300 IN A 127.0.0.80")
	s.dig(t, "nothere.apps.legacy.example", "A").wantStatus(t, "NXDOMAIN")
	s.dig(t, "web-server-service.default.corp.internal", "A").wantRecords(t, "answer", "web-server-service.default.corp.internal. 5 IN A 10.96.0.100")
	s.dig(t, "legacy-web.default.svc.cluster.local", "A").wantRecords(t, "answer", "legacy-web.default.svc.cluster.local. 5 IN A 10.96.0.100")
	r = s.dig(t, "cassandra-old.data.svc.cluster.local", "A")
	r.wantRecords(t, "answer", "cassandra-old.data.svc.cluster.local. 5 IN A 10.244.1.20", "cassandra-old.data.svc.cluster.local. 5 IN A 10.244.2.21")

	// The stub domain goes to its own server, the rest to the upstream.
	s.dig(t, "host.corp.example", "A").wantContains(t, "answer", "host.corp.example. 300 IN A 10.0.0.99")
	s.dig(t, "www.example.org", "A").wantContains(t, "answer", "www.example.org. 300 IN A 192.0.2.10")
	if got := corp.asked(); len(got) != 1 || got[0] != "host.corp.example." {
		t.Errorf("stub domain server asked %v, want [host.corp.example.]", got)
	}
	if got := up.asked(); contains(got, "host.corp.example.") || !contains(got, "www.example.org.") || contains(got, "nothere.apps.svc.cluster.local.") {
		t.Errorf("upstream asked %v", got)
	}
}

// TestImportKubeDNSConfigMap converts a kube-dns ConfigMap (JSON values
// inside YAML) and checks that its stub domain and upstream are used.
func TestImportKubeDNSConfigMap(t *testing.T) {
	requireTools(t, "dig")
	up := startUpstream(t, "192.0.2.10", "outside.example.")
	acme := startUpstream(t, "10.1.1.1", "x.acme.local.")
	cm := fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: kube-dns
  namespace: kube-system
data:
  stubDomains: |
    {"acme.local": [%q]}
  upstreamNameservers: |
    [%q]
`, acme.Addr, up.Addr)
	cfg, stderr := importConfig(t, "import-kube-dns", cm)
	if strings.Contains(stderr, "not converted") {
		t.Fatalf("not fully converted:\n%s", stderr)
	}
	s := launchImported(t, cfg)
	s.dig(t, "svc.acme.local", "A").wantContains(t, "answer", "svc.acme.local. 300 IN A 10.1.1.1")
	s.dig(t, "www.example.org", "A").wantContains(t, "answer", "www.example.org. 300 IN A 192.0.2.10")
	s.dig(t, webName, "A").wantRecords(t, "answer", webName+". 5 IN A 10.96.0.100")
	if got := acme.asked(); len(got) != 1 || got[0] != "svc.acme.local." {
		t.Errorf("stub domain server asked %v", got)
	}
}

// TestImportedHostsFile: a Corefile's hosts file is served, and a change
// to it is served within its reload interval.
func TestImportedHostsFile(t *testing.T) {
	requireTools(t, "dig")
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("10.0.0.1 one.corp.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, stderr := importConfig(t, "import-corefile", `.:53 {
    hosts `+hosts+` corp.example {
        ttl 60
        reload 200ms
    }
    kubernetes cluster.local
}
`)
	if strings.Contains(stderr, "not converted") {
		t.Fatalf("not fully converted:\n%s", stderr)
	}
	s := launchImported(t, cfg)
	s.dig(t, "one.corp.example", "A").wantRecords(t, "answer", "one.corp.example. 60 IN A 10.0.0.1")
	// No fallthrough: a name of the zone the file lacks is NXDOMAIN.
	s.dig(t, "two.corp.example", "A").wantStatus(t, "NXDOMAIN")
	if err := os.WriteFile(hosts, []byte("10.0.0.1 one.corp.example\n10.0.0.2 two.corp.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.waitAnswer(t, "two.corp.example", "A", "10.0.0.2")
	// Outside corp.example the file is not consulted.
	s.dig(t, webName, "A").wantRecords(t, "answer", webName+". 5 IN A 10.96.0.100")
}

// TestImportNodeLocalCorefile: a node-local-dns style Corefile (no
// kubernetes, cluster.local forwarded to the cluster DNS over TCP) serves
// no cluster of its own: cluster names go to the cluster DNS, others to
// the upstream.
func TestImportNodeLocalCorefile(t *testing.T) {
	requireTools(t, "dig")
	clusterDNS := startUpstream(t, "10.77.0.1", "svc.cluster.local.")
	up := startUpstream(t, "192.0.2.10", "outside.example.")
	cfg, stderr := importConfig(t, "import-corefile", `cluster.local:53 {
    errors
    cache 30
    forward . `+clusterDNS.Addr+` {
        force_tcp
    }
}
.:53 {
    errors
    cache 30
    forward . `+up.Addr+`
}
`)
	if strings.Contains(stderr, "not converted") || !strings.Contains(stderr, "no kubernetes directive") {
		t.Fatalf("stderr:\n%s", stderr)
	}
	s := launchImportedDir(t, cfg, t.TempDir())
	s.dig(t, webName, "A").wantContains(t, "answer", webName+". 300 IN A 10.77.0.1")
	s.dig(t, "www.example.org", "A").wantContains(t, "answer", "www.example.org. 300 IN A 192.0.2.10")
	// (The readiness probe's own questions reach it too: count ours.)
	if got := clusterDNS.asked(); !contains(got, webName+".") || contains(got, "www.example.org.") {
		t.Errorf("cluster DNS asked %v", got)
	}
	if got := up.asked(); contains(got, webName+".") {
		t.Errorf("upstream asked a cluster name: %v", got)
	}
}
