// Package e2e holds the end-to-end tests of clusterdns: they build
// ./cmd/clusterdns once, start it on loopback (or inside a network namespace
// of their own) with a temporary zones folder, and query it with the real
// tools users have: dig (dnsutils) and glibc's resolver through getent.
//
// Run with: go test ./test/e2e/ -v
//
// dig, ip (iproute2) and getent must be installed, and the glibc test needs
// root for network namespaces. Without them the tests skip, unless the
// environment variable CI is "true", where they fail instead.
package e2e
