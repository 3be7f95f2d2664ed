//go:build linux

package pages

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ReleaseStartupPages asks the kernel to reclaim the resident pages of the
// program's own code and read-only data. Starting up runs the init code of
// every package (the Kubernetes client, YAML, metrics) and loading the
// cluster touches parsers that are not used again, and the kernel maps a
// file's pages 64 KiB at a time around each one touched: about 10 MiB of
// the binary stay resident although answering queries uses 1 to 2 MiB of
// it. Those pages are clean copies of the executable; the ones in use come
// back on first touch. cmd/clusterdns calls it after its first full build
// and cmd/nodeproxy after its first full sync; it blocks for one madvise
// call per mapping (the kernel writes nothing: the pages are clean). It returns the size of the mappings advised; on a
// kernel without MADV_PAGEOUT it changes nothing and returns the error.
//
// Invariant (TestPageoutRanges, TestReleaseStartupPagesKeepsWorking): only
// mappings of the executable's own file that are not writable are advised.
// Their pages are clean copies of the file, so the kernel drops them and
// reads them back on the next touch; nothing is lost. A writable mapping
// (.data, .bss, the heap) or an anonymous one would be pushed to swap, or
// with no swap kept, and must never be advised.
func ReleaseStartupPages() (int, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("release startup pages: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("release startup pages: %w", err)
	}
	defer f.Close()
	ranges, err := pageoutRanges(f, exe)
	if err != nil {
		return 0, fmt.Errorf("release startup pages: %w", err)
	}
	total := 0
	for _, r := range ranges {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_PAGEOUT); errno != 0 {
			return total, fmt.Errorf("release startup pages: madvise: %w", errno)
		}
		// From now on a touched page is read alone: without it every
		// fault reads ahead (128 KiB) and maps the cached pages around
		// it (64 KiB), so the few scattered pages that serving and the
		// garbage collector use (code, type data, the pc tables a stack
		// scan reads) brought back about 12 MiB of the binary. A rare
		// path touched later costs one 4 KiB read per page.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_RANDOM); errno != 0 {
			return total, fmt.Errorf("release startup pages: madvise random: %w", errno)
		}
		total += int(r.end - r.start)
	}
	return total, nil
}

// addrRange is a mapping's [start, end).
type addrRange struct{ start, end uintptr }

// pageoutRanges returns the mappings in maps (the format of
// /proc/self/maps) that ReleaseStartupPages may advise: exe's own, not
// writable. Malformed lines are skipped.
func pageoutRanges(maps io.Reader, exe string) ([]addrRange, error) {
	var out []addrRange
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		from, to, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(from, 16, 64)
		end, err2 := strconv.ParseUint(to, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, addrRange{uintptr(start), uintptr(end)})
	}
	return out, sc.Err()
}
