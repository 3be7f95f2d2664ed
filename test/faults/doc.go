// Package faults holds process-level tests of clusterdns under faults and
// hostile clients: every upstream slow or dead, the zones folder replaced,
// deleted or unreadable, recursion and transfer ACLs seen from a client
// outside loopback (a network namespace pair), and, behind environment
// variables, the load test (CLUSTERDNS_LOAD=1: dnsperf at 80 % of the
// measured maximum for 60 s) and the soak test (CLUSTERDNS_SOAK=1: 10
// minutes, RSS and goroutines flat).
//
// They build ./cmd/clusterdns once. Every server they start forwards
// nothing or forwards to a DNS server the test runs on loopback; no query
// leaves the machine. The namespace tests need root and ip (iproute2) and
// dig, the load tests dnsperf; without them those tests skip.
//
// Run with: go test ./test/faults/ -v
package faults
