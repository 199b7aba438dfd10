package memtune

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ReleaseStartupPages asks the kernel to drop the executable's resident
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
func ReleaseStartupPages() (before, after int64, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, 0, err
	}
	before = rss()
	writeBack(exe)
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

// writeBack waits until the executable's dirty page-cache pages are on
// disk. A binary started right after it was written (`make build && make
// run`, an upgrade, the peer benchmark) still has most of its pages dirty
// 30 s later: the kernel writes them back only after dirty_expire (30 s).
// MADV_PAGEOUT cannot drop a dirty page from the page cache, so those pages
// stay cached, and every later fault maps them back together with the rest
// of its fault-around window (64 KiB): measured side by side, the same
// binary idled at 27.9 MiB (file 18.5, read-only data 11.3 resident) when
// freshly copied and 20.5 MiB (file 11.0, read-only data 3.7) when synced
// first. On a binary installed long ago nothing is dirty and this returns
// at once; it writes data pages only (no metadata, no cache flush).
func writeBack(exe string) {
	f, err := os.Open(exe)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.SyncFileRange(int(f.Fd()), 0, 0,
		unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
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
