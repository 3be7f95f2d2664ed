package migrate

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// ImportKubeDNS reads a kube-dns ConfigMap (kube-system/kube-dns, as YAML
// or JSON, e.g. `kubectl get configmap -n kube-system kube-dns -o yaml`)
// and converts its stubDomains and upstreamNameservers. A file that is not
// a ConfigMap, or whose values are not the JSON kube-dns expects, is an
// error; keys clusterdns has no use for are findings.
func ImportKubeDNS(path string) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kube-dns configmap: %w", err)
	}
	defer f.Close()
	return ReadKubeDNS(path, f)
}

// ReadKubeDNS is ImportKubeDNS for a ConfigMap read from r (named source).
func ReadKubeDNS(source string, r io.Reader) (*Result, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("kube-dns configmap %s: %w", source, err)
	}
	return ConvertKubeDNS(source, data)
}

// ConvertKubeDNS converts the bytes of a kube-dns ConfigMap read from
// source (named in errors and in the output's header).
func ConvertKubeDNS(source string, data []byte) (*Result, error) {
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(data, &cm); err != nil {
		return nil, fmt.Errorf("kube-dns configmap %s: %w", source, err)
	}
	if cm.Kind != "ConfigMap" {
		return nil, fmt.Errorf("kube-dns configmap %s: kind %q, want ConfigMap", source, cm.Kind)
	}
	r := &Result{Source: "kube-dns ConfigMap " + source}
	at := func(key string) Directive { return Directive{Name: "data." + key, File: source} }
	top := Directive{Name: "ConfigMap " + cm.Namespace + "/" + cm.Name, File: source, Line: 0}
	r.set("source", "kubernetes", top)
	keys := make([]string, 0, len(cm.Data))
	for k := range cm.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := cm.Data[k]
		switch k {
		case "upstreamNameservers":
			var servers []string
			if err := json.Unmarshal([]byte(v), &servers); err != nil {
				return nil, fmt.Errorf("kube-dns configmap %s: upstreamNameservers: want a JSON list of addresses: %w", source, err)
			}
			ups, err := kubeDNSServers(servers)
			if err != nil {
				return nil, fmt.Errorf("kube-dns configmap %s: upstreamNameservers: %w", source, err)
			}
			r.set("upstreams", ups, at(k))
		case "stubDomains":
			var stubs map[string][]string
			if err := json.Unmarshal([]byte(v), &stubs); err != nil {
				return nil, fmt.Errorf("kube-dns configmap %s: stubDomains: want a JSON object of domain to a list of addresses: %w", source, err)
			}
			domains := make([]string, 0, len(stubs))
			for d := range stubs {
				domains = append(domains, d)
			}
			slices.Sort(domains)
			for _, d := range domains {
				if _, ok := dns.IsDomainName(d); !ok || d == "" {
					return nil, fmt.Errorf("kube-dns configmap %s: stubDomains: %q is not a domain name", source, d)
				}
				ups, err := kubeDNSServers(stubs[d])
				if err != nil {
					return nil, fmt.Errorf("kube-dns configmap %s: stubDomains %s: %w", source, d, err)
				}
				r.setStub(strings.TrimSuffix(strings.ToLower(d), "."), ups, at(k))
			}
		case "federations":
			r.add(at(k), Unsupported, "federation names are not served (Kubernetes federation v1 is gone)")
		default:
			r.add(at(k), Unsupported, "unknown kube-dns key")
		}
	}
	r.sortFindings()
	return r, nil
}

// kubeDNSServers checks kube-dns server entries: ip or ip:port.
func kubeDNSServers(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("no server given")
	}
	var out []string
	for _, s := range in {
		u, err := upstream(strings.TrimSpace(s), false, "")
		if err != nil || strings.HasPrefix(u, "/") {
			return nil, fmt.Errorf("%q: want an IP address or ip:port", s)
		}
		out = append(out, u)
	}
	return out, nil
}
