// Package host is the `host` check: step 1 of the operations checklist
// (CPU, memory, free disk and inodes, optional process presence), read with
// gopsutil. Every value is exported whether or not a threshold fails.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/probes"
)

func init() {
	probes.Register(probes.Family{
		Type:      "host",
		NewConfig: func() probes.Config { return defaultConfig() },
		New:       newProber,
	})
}

// Config is the `host:` section of a check.
type Config struct {
	// CPUSample is the window CPU utilisation is measured over.
	CPUSample model.Duration `yaml:"cpu_sample"`
	// Ratio thresholds, 0..1. A max of 1 or a min of 0 disables the check.
	CPUMax        float64 `yaml:"cpu_max"`
	MemoryMax     float64 `yaml:"memory_max"`
	DiskFreeMin   float64 `yaml:"disk_free_min"`
	InodesFreeMin float64 `yaml:"inodes_free_min"`
	// Filesystem filters (RE2), as node_exporter's filesystem collector.
	MountPointsInclude string `yaml:"mount_points_include"`
	MountPointsExclude string `yaml:"mount_points_exclude"`
	FSTypesExclude     string `yaml:"fs_types_exclude"`
	// Processes that must be running.
	Processes []Process `yaml:"processes"`
	// ProcPath, SysPath and RootPath point at the host's filesystems when
	// vigil runs in a container (e.g. /host/proc); empty means the usual place.
	ProcPath string `yaml:"proc_path"`
	SysPath  string `yaml:"sys_path"`
	RootPath string `yaml:"root_path"`
}

// Process is one process that must be running: by name (as `ps -C` matches
// it) or by pidfile.
type Process struct {
	Name    string `yaml:"name,omitempty"`
	Pidfile string `yaml:"pidfile,omitempty"`
	// Label is the metric label value; defaults to the name or the pidfile's base name.
	Label string `yaml:"label,omitempty"`
}

func (p Process) label() string {
	switch {
	case p.Label != "":
		return p.Label
	case p.Name != "":
		return p.Name
	}
	return strings.TrimSuffix(filepath.Base(p.Pidfile), filepath.Ext(p.Pidfile))
}

// Defaults follow node_exporter's filesystem collector, plus the
// memory-backed and read-only image filesystems that never fill up with data.
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

// Validate reports every problem as a probes.FieldError.
func (c *Config) Validate() error {
	var errs []error
	if c.CPUSample <= 0 || time.Duration(c.CPUSample) >= time.Minute {
		errs = append(errs, probes.FieldErrorf("cpu_sample", "must be greater than 0 and less than 1m, got %s", c.CPUSample))
	}
	for _, r := range []struct {
		field string
		v     float64
	}{{"cpu_max", c.CPUMax}, {"memory_max", c.MemoryMax}, {"disk_free_min", c.DiskFreeMin}, {"inodes_free_min", c.InodesFreeMin}} {
		if r.v < 0 || r.v > 1 {
			errs = append(errs, probes.FieldErrorf(r.field, "must be between 0 and 1, got %g", r.v))
		}
	}
	for field, re := range map[string]string{
		"mount_points_include": c.MountPointsInclude,
		"mount_points_exclude": c.MountPointsExclude,
		"fs_types_exclude":     c.FSTypesExclude,
	} {
		if _, err := regexp.Compile(re); err != nil {
			errs = append(errs, probes.FieldErrorf(field, "invalid regular expression: %v", unwrapRegexpErr(err)))
		}
	}
	labels := map[string]int{}
	for i, p := range c.Processes {
		field := fmt.Sprintf("processes.%d", i)
		switch {
		case p.Name == "" && p.Pidfile == "":
			errs = append(errs, probes.FieldErrorf(field, "set one of name or pidfile"))
			continue
		case p.Name != "" && p.Pidfile != "":
			errs = append(errs, probes.FieldErrorf(field+".pidfile", "set only one of name or pidfile"))
			continue
		}
		if prev, dup := labels[p.label()]; dup {
			errs = append(errs, probes.FieldErrorf(field, "duplicate process label %q (also processes[%d]); set label", p.label(), prev))
		}
		labels[p.label()] = i
	}
	for _, f := range []struct{ field, v string }{{"proc_path", c.ProcPath}, {"sys_path", c.SysPath}, {"root_path", c.RootPath}} {
		if f.v != "" && !filepath.IsAbs(f.v) {
			errs = append(errs, probes.FieldErrorf(f.field, "must be an absolute path, got %q", f.v))
		}
	}
	return errors.Join(errs...)
}

// unwrapRegexpErr drops regexp's "error parsing regexp: " prefix.
func unwrapRegexpErr(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// Prober runs the host check.
type Prober struct {
	cfg                         *Config
	include, exclude, fsExclude *regexp.Regexp
}

var _ probes.Prober = (*Prober)(nil)

func newProber(c probes.Config, _ probes.Options) (probes.Prober, error) {
	cfg, ok := c.(*Config)
	if !ok {
		return nil, fmt.Errorf("host: config of type %T", c)
	}
	p := &Prober{cfg: cfg}
	var err error
	if cfg.MountPointsInclude != "" {
		if p.include, err = regexp.Compile(cfg.MountPointsInclude); err != nil {
			return nil, fmt.Errorf("mount_points_include: %w", err)
		}
	}
	if p.exclude, err = regexp.Compile(cfg.MountPointsExclude); err != nil {
		return nil, fmt.Errorf("mount_points_exclude: %w", err)
	}
	if p.fsExclude, err = regexp.Compile(cfg.FSTypesExclude); err != nil {
		return nil, fmt.Errorf("fs_types_exclude: %w", err)
	}
	return p, nil
}

// Probe collects a sample and evaluates it against the thresholds.
func (p *Prober) Probe(ctx context.Context, log *slog.Logger) probes.Result {
	var res probes.Result
	s := p.collect(ctx, &res)
	evaluate(s, p.cfg, &res)
	return res
}
