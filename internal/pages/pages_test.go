//go:build linux

package pages

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/clusterdns/clusterdns/internal/testbin"
)

// TestReleaseStartupPages checks that the executable's resident pages
// shrink: the test binary's init code and the test framework have touched
// far more of it than the few pages the check itself touches again.
func TestReleaseStartupPages(t *testing.T) {
	before, err := testbin.ProcMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	n, err := ReleaseStartupPages()
	if errors.Is(err, unix.EINVAL) {
		t.Skipf("kernel without MADV_PAGEOUT: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	after, err := testbin.ProcMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("advised %d bytes of mappings; file-backed RSS %v → %v", n, before.File, after.File)
	if n <= 0 {
		t.Errorf("no mapping of the executable advised")
	}
	if after.File >= before.File {
		t.Errorf("file-backed RSS did not shrink: %v → %v", before.File, after.File)
	}
}
