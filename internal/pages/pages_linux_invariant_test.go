//go:build linux

package pages

import (
	"crypto/sha256"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Only the executable's own read-only mappings are ever advised: never a
// writable one (data, heap), another file's, or an anonymous one.
func TestPageoutRanges(t *testing.T) {
	const exe = "/usr/bin/clusterdns"
	maps := strings.Join([]string{
		"00400000-00800000 r-xp 00000000 fd:01 123 /usr/bin/clusterdns",             // text: yes
		"00800000-00a00000 r--p 00400000 fd:01 123 /usr/bin/clusterdns",             // rodata: yes
		"00a00000-00a10000 rw-p 00600000 fd:01 123 /usr/bin/clusterdns",             // data: writable
		"00a10000-00b00000 rw-p 00000000 00:00 0",                                   // bss: anonymous
		"c000000000-c004000000 rw-p 00000000 00:00 0",                               // heap
		"7f0000000000-7f0000100000 r-xp 00000000 fd:01 456 /usr/lib/libc.so.6",      // another file
		"7f0000100000-7f0000200000 r--p 00000000 fd:01 123 /usr/bin/clusterdns.old", // a longer name
		"garbage",
		"00b00000-00a00000 r--p 00000000 fd:01 123 /usr/bin/clusterdns", // end before start
	}, "\n")
	got, err := pageoutRanges(strings.NewReader(maps), exe)
	if err != nil {
		t.Fatal(err)
	}
	want := []addrRange{{0x400000, 0x800000}, {0x800000, 0xa00000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("advised %x, want %x", got, want)
	}
}

// After the pages are released the program runs on, its read-only data
// read back from the file unchanged.
func TestReleaseStartupPagesKeepsWorking(t *testing.T) {
	before := sha256.Sum256([]byte(rodataSample))
	n, err := ReleaseStartupPages()
	if errors.Is(err, unix.EINVAL) {
		t.Skip("kernel without MADV_PAGEOUT")
	}
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no mapping of the test binary advised")
	}
	if after := sha256.Sum256([]byte(rodataSample)); after != before {
		t.Fatal("read-only data changed after MADV_PAGEOUT")
	}
	if _, err := os.Readlink("/proc/self/exe"); err != nil {
		t.Fatal(err)
	}
	// Code of this package still runs.
	done := make(chan struct{})
	NewSettleTrimmer(time.Millisecond, time.Second, func() { close(done) }).Changed()
	<-done
}

// rodataSample is a string constant of the binary's read-only data.
const rodataSample = "MADV_PAGEOUT may drop this page; reading it again must give the same bytes."
