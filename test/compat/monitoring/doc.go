// Package monitoring tests deploy/monitoring/: the PrometheusRule parses with
// Prometheus's own rule and PromQL parsers (github.com/prometheus/prometheus
// model/rulefmt and promql/parser), the Grafana dashboard's queries parse
// with the PromQL parser, and every metric they name — with the labels they
// match and group by — is exported by a running clusterdns (the real binary,
// against a real kube-apiserver, after queries of every kind: cluster,
// forwarded, cached, failed upstream).
//
//	export CLUSTERDNS_APISERVER_BIN="$(bash test/apiserver/build.sh | tail -n 1)"
//	cd test/compat && go test ./monitoring/
package monitoring
