//go:build !linux

package app

// releaseStartupPages does nothing outside Linux.
func releaseStartupPages() (int, error) { return 0, nil }
