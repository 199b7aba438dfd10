package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
// judging so evaluate can be tested on hand-built samples.
type sample struct {
	cpuUtil   float64 // 0..1, -1 when unknown
	cpuCount  int
	load      *load.AvgStat
	memory    *mem.VirtualMemoryStat
	swap      *mem.SwapMemoryStat
	fs        []filesystem
	processes []processCount
	// errs lists what could not be read; any entry fails the check.
	errs []string
}

type filesystem struct {
	mountpoint, fstype, device string
	size, avail                uint64
	files, filesFree           uint64
}

type processCount struct {
	label string
	count int
}

func (p *Prober) collect(ctx context.Context, res *probes.Result) sample {
	env := common.EnvMap{}
	if p.cfg.ProcPath != "" {
		env[common.HostProcEnvKey] = p.cfg.ProcPath
	}
	if p.cfg.SysPath != "" {
		env[common.HostSysEnvKey] = p.cfg.SysPath
	}
	ctx = context.WithValue(ctx, common.EnvKey, env)
	s := sample{cpuUtil: -1}
	fail := func(what string, err error) { s.errs = append(s.errs, fmt.Sprintf("%s: %v", what, err)) }

	start := time.Now()
	if pct, err := cpu.PercentWithContext(ctx, time.Duration(p.cfg.CPUSample), false); err != nil {
		fail("cpu", err)
	} else if len(pct) == 1 {
		s.cpuUtil = pct[0] / 100
	}
	if n, err := cpu.CountsWithContext(ctx, true); err != nil {
		fail("cpu count", err)
	} else {
		s.cpuCount = n
	}
	if l, err := load.AvgWithContext(ctx); err != nil {
		fail("load", err)
	} else {
		s.load = l
	}
	res.AddPhase("cpu", start)

	start = time.Now()
	if m, err := mem.VirtualMemoryWithContext(ctx); err != nil {
		fail("memory", err)
	} else {
		s.memory = m
	}
	if sw, err := mem.SwapMemoryWithContext(ctx); err != nil {
		fail("swap", err)
	} else {
		s.swap = sw
	}
	res.AddPhase("memory", start)

	start = time.Now()
	parts, err := disk.PartitionsWithContext(ctx, false)
	if err != nil {
		fail("filesystems", err)
	}
	for _, part := range p.filterPartitions(parts) {
		fs, err := usage(ctx, filepath.Join(p.rootPath(), part.Mountpoint))
		if err != nil {
			fail("filesystem "+part.Mountpoint, err)
			continue
		}
		fs.mountpoint, fs.fstype, fs.device = part.Mountpoint, part.Fstype, part.Device
		s.fs = append(s.fs, fs)
	}
	res.AddPhase("filesystems", start)

	if len(p.cfg.Processes) > 0 {
		start = time.Now()
		s.processes = p.countProcesses(ctx, fail)
		res.AddPhase("processes", start)
	}
	return s
}

func (p *Prober) rootPath() string {
	if p.cfg.RootPath == "" {
		return "/"
	}
	return p.cfg.RootPath
}

// filterPartitions applies the mount point and fs type filters and keeps
// the first entry of each mount point (bind mounts repeat them).
func (p *Prober) filterPartitions(parts []disk.PartitionStat) []disk.PartitionStat {
	seen := map[string]bool{}
	var out []disk.PartitionStat
	for _, part := range parts {
		switch {
		case seen[part.Mountpoint],
			p.include != nil && !p.include.MatchString(part.Mountpoint),
			p.exclude.MatchString(part.Mountpoint),
			p.fsExclude.MatchString(part.Fstype):
			continue
		}
		seen[part.Mountpoint] = true
		out = append(out, part)
	}
	return out
}

// usage runs statfs in its own goroutine: a hung network mount blocks the
// syscall uninterruptibly, and it must not hang the whole probe.
func usage(ctx context.Context, path string) (filesystem, error) {
	type result struct {
		u   *disk.UsageStat
		err error
	}
	ch := make(chan result, 1)
	go func() {
		u, err := disk.UsageWithContext(ctx, path)
		ch <- result{u, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return filesystem{}, r.err
		}
		return filesystem{size: r.u.Total, avail: r.u.Free, files: r.u.InodesTotal, filesFree: r.u.InodesFree}, nil
	case <-ctx.Done():
		return filesystem{}, fmt.Errorf("statfs did not return: %w", ctx.Err())
	}
}

func (p *Prober) countProcesses(ctx context.Context, fail func(string, error)) []processCount {
	out := make([]processCount, 0, len(p.cfg.Processes))
	var names map[string]int
	for _, want := range p.cfg.Processes {
		pc := processCount{label: want.label()}
		if want.Pidfile != "" {
			pc.count = p.pidfileAlive(ctx, want.Pidfile)
			out = append(out, pc)
			continue
		}
		if names == nil {
			var err error
			if names, err = processNames(ctx); err != nil {
				fail("processes", err)
				names = map[string]int{}
			}
		}
		pc.count = names[want.Name]
		out = append(out, pc)
	}
	return out
}

// processNames counts running processes by name. Processes that exit while
// being listed are skipped.
func processNames(ctx context.Context) (map[string]int, error) {
	procs, err := process.ProcessesWithContext(ctx)
	if err != nil {
		return nil, err
	}
	names := make(map[string]int, len(procs))
	for _, pr := range procs {
		if n, err := pr.NameWithContext(ctx); err == nil {
			names[n]++
		}
	}
	return names, nil
}

// pidfileAlive returns 1 when the pidfile names a running process. A
// missing or garbled pidfile means the process is not running.
func (p *Prober) pidfileAlive(ctx context.Context, path string) int {
	b, err := os.ReadFile(filepath.Join(p.rootPath(), path))
	if err != nil {
		return 0
	}
	pid, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 32)
	if err != nil || pid <= 0 {
		return 0
	}
	if ok, err := process.PidExistsWithContext(ctx, int32(pid)); err != nil || !ok {
		return 0
	}
	return 1
}
