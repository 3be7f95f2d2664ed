package main

import "testing"

// TestNetlinkElementsFlag checks that elements go over netlink unless
// --netlink-elements=false asks for everything through nft.
func TestNetlinkElementsFlag(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.NetlinkElements {
		t.Error("--netlink-elements is off by default")
	}
	if cfg, err = parseFlags([]string{"--netlink-elements=false"}); err != nil {
		t.Fatal(err)
	}
	if cfg.NetlinkElements {
		t.Error("--netlink-elements=false left it on")
	}
}
