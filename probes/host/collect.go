package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/process"

	"github.com/vigil-project/vigil/probes"
)

// sample is what one run read from the machine. Reading is kept apart from
// judging so that evaluate can be tested on hand-built samples. A part left
// nil or empty could not be read, and errs says why.
type sample struct {
	cpuUtil  *float64 // busy share of all CPUs over cpu_sample, 0..1
	cpuCount int
	load     *load.AvgStat
	// memory covers swap too: meminfo has it, and unlike gopsutil's
	// SwapMemory, which asks sysinfo(2), it honours proc_path.
	memory      *mem.VirtualMemoryStat
	filesystems []filesystem
	processes   []processCount
	errs        []error
	phases      []probes.Phase
}

type filesystem struct {
	mountpoint, fstype, device string
	size                       uint64
	avail                      uint64 // free to unprivileged users, as df shows it
	files, filesFree           uint64
}

type processCount struct {
	label string
	count int
}

func (s *sample) fail(what string, err error) {
	s.errs = append(s.errs, fmt.Errorf("%s: %w", what, err))
}

func (s *sample) phase(name string, start time.Time) {
	s.phases = append(s.phases, probes.Phase{Name: name, Duration: time.Since(start)})
}

// collect reads everything it can. A part that fails is recorded and the
// rest is still read, so one missing file does not blank the dashboard.
func (p *Prober) collect(ctx context.Context) sample {
	ctx = p.hostContext(ctx)
	var s sample

	start := time.Now()
	if u, err := cpuUtilization(ctx, time.Duration(p.cfg.CPUSample)); err != nil {
		s.fail("cpu", err)
	} else {
		s.cpuUtil = &u
	}
	if n, err := cpu.CountsWithContext(ctx, true); err != nil {
		s.fail("cpu count", err)
	} else {
		s.cpuCount = n
	}
	if l, err := load.AvgWithContext(ctx); err != nil {
		s.fail("load", err)
	} else {
		s.load = l
	}
	s.phase("cpu", start)

	start = time.Now()
	if m, err := mem.VirtualMemoryWithContext(ctx); err != nil {
		s.fail("memory", err)
	} else {
		s.memory = m
	}
	s.phase("memory", start)

	start = time.Now()
	if parts, err := p.partitions(ctx); err != nil {
		s.fail("filesystems", err)
	} else {
		var errs []error
		s.filesystems, errs = p.usage(ctx, parts)
		s.errs = append(s.errs, errs...)
	}
	s.phase("filesystems", start)

	if len(p.cfg.Processes) > 0 {
		start = time.Now()
		var errs []error
		s.processes, errs = p.countProcesses(ctx)
		s.errs = append(s.errs, errs...)
		s.phase("processes", start)
	}
	return s
}

// cpuUtilization is the busy share of all CPUs over window, 0..1.
func cpuUtilization(ctx context.Context, window time.Duration) (float64, error) {
	pct, err := cpu.PercentWithContext(ctx, window, false)
	if err != nil {
		return 0, err
	}
	// gopsutil reports an unreadable stat file as no CPUs, not as an error.
	if len(pct) == 0 {
		return 0, errors.New("no cpu times in stat")
	}
	return pct[0] / 100, nil
}

// hostContext points gopsutil at the host's /proc and /sys.
func (p *Prober) hostContext(ctx context.Context) context.Context {
	env := common.EnvMap{}
	if p.cfg.ProcPath != "" {
		env[common.HostProcEnvKey] = p.cfg.ProcPath
	}
	if p.cfg.SysPath != "" {
		env[common.HostSysEnvKey] = p.cfg.SysPath
	}
	return context.WithValue(ctx, common.EnvKey, env)
}

// partitions lists the filesystems to measure. It asks gopsutil for all
// of them: its own selection keeps only types /proc/filesystems does not
// mark nodev, which leaves out NFS, CIFS and FUSE, where data often lives.
func (p *Prober) partitions(ctx context.Context) ([]disk.PartitionStat, error) {
	parts, err := disk.PartitionsWithContext(ctx, true)
	if err != nil {
		return nil, err
	}
	return p.filter(parts), nil
}

// filter applies the configured filters and keeps one entry per mount
// point. Where mounts are stacked, statfs sees the one mounted last, which
// mountinfo lists last, so that entry is kept and judged by the filters
// rather than the hidden ones beneath it. Bind mounts show a filesystem
// already listed elsewhere, so they are left out as gopsutil itself does.
func (p *Prober) filter(parts []disk.PartitionStat) []disk.PartitionStat {
	top := make(map[string]int, len(parts))
	for i, part := range parts {
		top[part.Mountpoint] = i
	}
	var out []disk.PartitionStat
	for i, part := range parts {
		switch {
		case top[part.Mountpoint] != i,
			slices.Contains(part.Opts, "bind"),
			p.include != nil && !p.include.MatchString(part.Mountpoint),
			p.exclude != nil && p.exclude.MatchString(part.Mountpoint),
			p.fsExclude != nil && p.fsExclude.MatchString(part.Fstype):
			continue
		}
		out = append(out, part)
	}
	return out
}

var errStillHung = errors.New("statfs from an earlier run has not returned yet")

// usage runs statfs on all filesystems at once, each in its own goroutine:
// statfs on a hung network mount blocks uninterruptibly, and it must cost
// neither the probe its deadline nor the other mounts their turn.
func (p *Prober) usage(ctx context.Context, parts []disk.PartitionStat) ([]filesystem, []error) {
	type result struct {
		i   int
		u   *disk.UsageStat
		err error
	}
	results := make([]*result, len(parts))
	ch := make(chan *result, len(parts)) // buffered so a late statfs can still finish
	started := 0
	for i, part := range parts {
		if !p.startStatfs(part.Mountpoint) {
			results[i] = &result{err: errStillHung}
			continue
		}
		started++
		go func() {
			u, err := disk.UsageWithContext(ctx, filepath.Join(p.cfg.RootPath, part.Mountpoint))
			p.endStatfs(part.Mountpoint)
			ch <- &result{i, u, err}
		}()
	}
wait:
	for range started {
		select {
		case r := <-ch:
			results[r.i] = r
		case <-ctx.Done():
			break wait
		}
	}

	var out []filesystem
	var errs []error
	for i, part := range parts {
		switch r := results[i]; {
		case r == nil:
			errs = append(errs, fmt.Errorf("filesystem %s: statfs did not return: %w", part.Mountpoint, ctx.Err()))
		case r.err != nil:
			errs = append(errs, fmt.Errorf("filesystem %s: %w", part.Mountpoint, r.err))
		default:
			out = append(out, filesystem{
				mountpoint: part.Mountpoint, fstype: part.Fstype, device: part.Device,
				size: r.u.Total, avail: r.u.Free, files: r.u.InodesTotal, filesFree: r.u.InodesFree,
			})
		}
	}
	return out, errs
}

// startStatfs marks a statfs on mountpoint as in flight; it reports false
// when one from an earlier run still is.
func (p *Prober) startStatfs(mountpoint string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.statfsInFlight[mountpoint] {
		return false
	}
	p.statfsInFlight[mountpoint] = true
	return true
}

func (p *Prober) endStatfs(mountpoint string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.statfsInFlight, mountpoint)
}

// countProcesses counts the running processes of each configured entry.
// An entry that could not be checked is left out rather than counted as 0,
// which would report it missing.
func (p *Prober) countProcesses(ctx context.Context) ([]processCount, []error) {
	names := sync.OnceValues(func() (map[string]int, error) { return processNames(ctx) })
	var out []processCount
	var errs []error
	for _, want := range p.cfg.Processes {
		var n int
		var err error
		if want.Pidfile != "" {
			n, err = p.pidfileRunning(ctx, want.Pidfile)
		} else {
			var counts map[string]int
			counts, err = names()
			n = counts[want.Name]
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("process %s: %w", want.label(), err))
			continue
		}
		out = append(out, processCount{label: want.label(), count: n})
	}
	return out, errs
}

// processNames counts running processes by name, as `ps -C` matches them.
// Processes that exit while being listed are skipped.
func processNames(ctx context.Context) (map[string]int, error) {
	pids, err := process.PidsWithContext(ctx)
	if err != nil {
		return nil, err
	}
	names := make(map[string]int, len(pids))
	for _, pid := range pids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// A bare Process skips NewProcess's existence check and start-time
		// read, which a name does not need; a pid that has gone away just
		// fails to give its name.
		if name, err := (&process.Process{Pid: pid}).NameWithContext(ctx); err == nil {
			names[name]++
		}
	}
	return names, nil
}

// pidfileRunning returns 1 when the pidfile names a live process. A missing
// or unparsable pidfile means the daemon is not running (or is rewriting
// it), not that the check is broken.
func (p *Prober) pidfileRunning(ctx context.Context, path string) (int, error) {
	b, err := os.ReadFile(filepath.Join(p.cfg.RootPath, path))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 32)
	if err != nil || pid <= 0 {
		return 0, nil
	}
	if ok, err := process.PidExistsWithContext(ctx, int32(pid)); err != nil || !ok {
		return 0, err
	}
	return 1, nil
}
