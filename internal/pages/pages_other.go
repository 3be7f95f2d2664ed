//go:build !linux

package pages

// ReleaseStartupPages does nothing outside Linux.
func ReleaseStartupPages() (int, error) { return 0, nil }
