// Package host is the `host` check, step 1 of the operations checklist:
// CPU, load, memory, free disk space and inodes, and optionally whether
// given processes are running. It reads the machine through gopsutil and
// exports every value whether or not a threshold fails, so a dashboard shows
// how close the host came before it failed.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
)

func init() {
	probes.Register(probes.Family{
		Type: "host", Step: probes.StepHost,
		NewConfig: func() probes.Config { return defaultConfig() },
		New:       newProber,
		Metrics: []probes.Metric{
			{Name: "vigil_host_cpu_utilization_ratio", Help: "Busy share of all CPUs over cpu_sample (0..1)."},
			{Name: "vigil_host_cpus", Help: "Logical CPUs of the host."},
			{Name: "vigil_host_load1", Help: "Load average over 1 minute."},
			{Name: "vigil_host_load5", Help: "Load average over 5 minutes."},
			{Name: "vigil_host_load15", Help: "Load average over 15 minutes."},
			{Name: "vigil_host_memory_total_bytes", Help: "Physical memory of the host."},
			{Name: "vigil_host_memory_available_bytes", Help: "Memory available for new work without swapping (MemAvailable)."},
			{Name: "vigil_host_memory_used_ratio", Help: "1 - available/total memory."},
			{Name: "vigil_host_swap_total_bytes", Help: "Swap space of the host."},
			{Name: "vigil_host_swap_used_bytes", Help: "Swap space in use."},
			{Name: "vigil_host_filesystem_size_bytes", Help: "Size of each checked filesystem."},
			{Name: "vigil_host_filesystem_avail_bytes", Help: "Bytes of each checked filesystem available to unprivileged users."},
			{Name: "vigil_host_filesystem_files", Help: "Inodes of each checked filesystem."},
			{Name: "vigil_host_filesystem_files_free", Help: "Free inodes of each checked filesystem."},
			{Name: "vigil_host_filesystem_free_min_ratio", Help: "Lowest available/size ratio over the checked filesystems."},
			{Name: "vigil_host_processes", Help: "Running processes matching each processes entry."},
		},
	})
}

// Config is the `host:` section of a check. Ratios are 0..1; a max of 1 or
// a min of 0 turns that threshold off.
type Config struct {
	CPUSample     model.Duration `yaml:"cpu_sample"`
	CPUMax        float64        `yaml:"cpu_max"`
	MemoryMax     float64        `yaml:"memory_max"`
	DiskFreeMin   float64        `yaml:"disk_free_min"`
	InodesFreeMin float64        `yaml:"inodes_free_min"`

	// Filesystem filters are RE2 expressions, as in node_exporter. An empty
	// one is off: an empty include keeps every mount point.
	MountPointsInclude string `yaml:"mount_points_include"`
	MountPointsExclude string `yaml:"mount_points_exclude"`
	FSTypesExclude     string `yaml:"fs_types_exclude"`

	Processes []Process `yaml:"processes"`

	// ProcPath, SysPath and RootPath point at the host's filesystems when
	// vigil runs in a container (e.g. /host/proc); empty means the usual
	// place (or gopsutil's HOST_PROC and HOST_SYS variables).
	ProcPath string `yaml:"proc_path"`
	SysPath  string `yaml:"sys_path"`
	RootPath string `yaml:"root_path"`
}

// Process is one process that must be running, found either by name (as
// `ps -C` matches it) or through its pidfile.
type Process struct {
	Name    string `yaml:"name"`
	Pidfile string `yaml:"pidfile"`
	// Label is the value of the `process` metric label.
	Label string `yaml:"label"`
}

func (p Process) label() string {
	switch {
	case p.Label != "":
		return p.Label
	case p.Name != "":
		return p.Name
	}
	base := filepath.Base(p.Pidfile)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// The filters start from node_exporter's defaults so both agents watch the
// same filesystems. tmpfs and ramfs are excluded as well: they hold memory,
// not stored data, and what they use already counts against memory.
const (
	defaultMountPointsExclude = `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`
	defaultFSTypesExclude     = `^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|erofs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|ramfs|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tmpfs|tracefs)$`
)

func defaultConfig() *Config {
	return &Config{
		CPUSample:          model.Duration(time.Second),
		CPUMax:             0.9,
		MemoryMax:          0.9,
		DiskFreeMin:        0.1,
		InodesFreeMin:      0.05,
		MountPointsExclude: defaultMountPointsExclude,
		FSTypesExclude:     defaultFSTypesExclude,
	}
}

// Validate reports every problem as a confkit.FieldError.
func (c *Config) Validate() error {
	var errs []error
	if c.CPUSample <= 0 || time.Duration(c.CPUSample) >= time.Minute {
		errs = append(errs, confkit.FieldErrorf("cpu_sample", "must be more than 0 and less than 1m, got %s", c.CPUSample))
	}
	for _, r := range []struct {
		field string
		v     float64
	}{
		{"cpu_max", c.CPUMax},
		{"memory_max", c.MemoryMax},
		{"disk_free_min", c.DiskFreeMin},
		{"inodes_free_min", c.InodesFreeMin},
	} {
		if !(r.v >= 0 && r.v <= 1) { // also rejects NaN
			errs = append(errs, confkit.FieldErrorf(r.field, "must be between 0 and 1, got %g", r.v))
		}
	}
	for _, r := range []struct{ field, expr string }{
		{"mount_points_include", c.MountPointsInclude},
		{"mount_points_exclude", c.MountPointsExclude},
		{"fs_types_exclude", c.FSTypesExclude},
	} {
		if _, err := regexp.Compile(r.expr); err != nil {
			errs = append(errs, confkit.FieldErrorf(r.field, "invalid regular expression: %s", regexpProblem(err)))
		}
	}
	for _, f := range []struct{ field, path string }{
		{"proc_path", c.ProcPath},
		{"sys_path", c.SysPath},
		{"root_path", c.RootPath},
	} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			errs = append(errs, confkit.FieldErrorf(f.field, "must be an absolute path, got %q", f.path))
		}
	}
	seen := map[string]int{}
	for i, p := range c.Processes {
		field := fmt.Sprintf("processes.%d", i)
		switch {
		case p.Name == "" && p.Pidfile == "":
			errs = append(errs, confkit.FieldErrorf(field, "set name or pidfile"))
			continue
		case p.Name != "" && p.Pidfile != "":
			errs = append(errs, confkit.FieldErrorf(field+".pidfile", "set name or pidfile, not both"))
			continue
		case p.Pidfile != "" && !filepath.IsAbs(p.Pidfile):
			errs = append(errs, confkit.FieldErrorf(field+".pidfile", "must be an absolute path, got %q", p.Pidfile))
		}
		// The label names the series; two entries sharing one would
		// overwrite each other's processes.
		label := p.label()
		if prev, dup := seen[label]; dup {
			errs = append(errs, confkit.FieldErrorf(field+".label", "label %q is already used by processes.%d", label, prev))
			continue
		}
		seen[label] = i
	}
	return errors.Join(errs...)
}

// regexpProblem is a compile error without its "error parsing regexp"
// prefix, which the message already says in its own words.
func regexpProblem(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return fmt.Sprintf("%s: `%s`", se.Code, se.Expr)
	}
	return err.Error()
}

// Prober runs the host check.
type Prober struct {
	cfg                         *Config
	include, exclude, fsExclude *regexp.Regexp // nil: filter off

	// statfsInFlight holds mount points whose statfs has not returned. One
	// left over from an earlier run is hung and pins an OS thread, so it is
	// skipped rather than asked again every run (as node_exporter does).
	mu             sync.Mutex
	statfsInFlight map[string]bool
}

var _ probes.Prober = (*Prober)(nil)

func newProber(c probes.Config, _ probes.Options) (probes.Prober, error) {
	cfg, ok := c.(*Config)
	if !ok {
		return nil, fmt.Errorf("host: unexpected config type %T", c)
	}
	p := &Prober{cfg: cfg, statfsInFlight: map[string]bool{}}
	var err error
	if p.include, err = compileFilter("mount_points_include", cfg.MountPointsInclude); err != nil {
		return nil, err
	}
	if p.exclude, err = compileFilter("mount_points_exclude", cfg.MountPointsExclude); err != nil {
		return nil, err
	}
	if p.fsExclude, err = compileFilter("fs_types_exclude", cfg.FSTypesExclude); err != nil {
		return nil, err
	}
	return p, nil
}

// compileFilter returns nil for an empty expression, meaning no filter:
// compiled, "" would match every mount point and exclude them all.
func compileFilter(field, expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return re, nil
}

// Probe reads the machine and judges what it read against the thresholds.
func (p *Prober) Probe(ctx context.Context, _ *slog.Logger) probes.Result {
	return evaluate(p.collect(ctx), p.cfg)
}
