package testbin

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Memory is a process's memory as /proc/<pid>/status reports it, in bytes.
type Memory struct {
	RSS  int64 // VmRSS: resident now
	Peak int64 // VmHWM: the most resident so far
	Anon int64 // RssAnon: heap, stacks
	File int64 // RssFile: file pages (the binary)
}

// String reads "RSS 47 MiB (anonymous 41.7 MiB, file 5.2 MiB), peak 78 MiB".
func (m Memory) String() string {
	return fmt.Sprintf("RSS %d MiB (anonymous %.1f MiB, file %.1f MiB), peak %d MiB",
		m.RSS>>20, float64(m.Anon)/(1<<20), float64(m.File)/(1<<20), m.Peak>>20)
}

// ProcMemory reads the memory of process pid.
func ProcMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	fields := map[string]*int64{"VmRSS:": &m.RSS, "VmHWM:": &m.Peak, "RssAnon:": &m.Anon, "RssFile:": &m.File}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || fields[f[0]] == nil {
			continue
		}
		if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			*fields[f[0]] = kb << 10
		}
	}
	if m.RSS == 0 {
		return Memory{}, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
	}
	return m, nil
}
