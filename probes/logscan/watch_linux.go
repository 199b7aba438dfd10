package logscan

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// watch wakes the reader on file events in the directories of the
// configured paths (inotify), so new lines are read without waiting for
// the next poll. Polling stays the source of truth: a missed or
// overflowing event only delays a read to the next poll.
func watch(ctx context.Context, cfg *Config, log *slog.Logger) <-chan struct{} {
	if !cfg.Inotify {
		return nil
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		log.Debug("inotify unavailable; polling only", "err", err)
		return nil
	}
	dirs := map[string]bool{}
	for _, p := range cfg.Paths {
		dir := filepath.Dir(p)
		if strings.ContainsAny(dir, "*?[") || dirs[dir] {
			continue
		}
		dirs[dir] = true
		if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM|unix.IN_DELETE|unix.IN_ATTRIB); err != nil {
			log.Debug("inotify watch failed; polling only for this directory", "dir", dir, "err", err)
		}
	}
	// Non-blocking and wrapped in an *os.File, the descriptor waits in Go's
	// poller, and closing it ends the read below.
	f := os.NewFile(uintptr(fd), "inotify")
	wake := make(chan struct{}, 1)
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if n <= 0 || err != nil {
				return
			}
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}()
	return wake
}
