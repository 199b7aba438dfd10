package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseStartupPages asks the kernel to drop the executable's resident
// code and read-only data (MADV_PAGEOUT, Linux 5.4+). Start-up runs every
// package initialiser, parses the config and migrates the store — code an
// idle agent never needs again — and the kernel's fault-around maps the
// neighbours of each page touched, so without this an idle agent keeps most
// of its 30 MB binary resident. Pages still in use fault back in on their
// next access; only clean, file-backed pages are affected. It returns the
// RSS before and after, in bytes.
//
// The mappings are also marked MADV_RANDOM: without it, each page that
// faults back in reads its neighbours into the page cache and fault-around
// maps them, so within minutes most of rodata and pclntab is resident again
// although an idle agent reads a few MiB of it (measured: read-only data
// 10.3 MiB resident without, 3.3 MiB with; BENCHMARKS.md). Executable text
// is read around regardless (the kernel ignores the hint for VM_EXEC).
func releaseStartupPages() (before, after int64, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, 0, err
	}
	before = rss()
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// address perms offset dev inode path
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[5] != exe || strings.ContainsRune(f[1], 'w') {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		// The raw call takes the addresses as they are: the range is a
		// mapping of the executable, not Go memory.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_RANDOM); errno != 0 {
			return before, rss(), fmt.Errorf("madvise random %s: %w", f[0], errno)
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); errno != 0 {
			return before, rss(), fmt.Errorf("madvise %s: %w", f[0], errno)
		}
	}
	return before, rss(), sc.Err()
}

// rss reads VmRSS of this process in bytes (0 if unknown).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
