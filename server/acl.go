package server

import "net/netip"

// inPrefixes reports whether a (IPv4-mapped addresses unmapped) is in one
// of the networks.
func inPrefixes(nets []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
