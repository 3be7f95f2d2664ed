//go:build linux

package pages

import (
	"bufio"
	"fmt"
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
	total := 0
	sc := bufio.NewScanner(f)
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
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); errno != 0 {
			return total, fmt.Errorf("release startup pages: madvise: %w", errno)
		}
		total += int(end - start)
	}
	if err := sc.Err(); err != nil {
		return total, fmt.Errorf("release startup pages: %w", err)
	}
	return total, nil
}
