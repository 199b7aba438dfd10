package host

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
)

func TestRegistered(t *testing.T) {
	f, ok := probes.Lookup("host")
	if !ok {
		t.Fatal("host is not registered")
	}
	cfg := f.NewConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if _, err := f.New(cfg, probes.Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // "field: message"
	}{
		{"defaults", func(*Config) {}, nil},
		{"filters off", func(c *Config) { c.MountPointsExclude, c.FSTypesExclude = "", "" }, nil},
		{"cpu_sample zero", func(c *Config) { c.CPUSample = 0 }, []string{
			"cpu_sample: must be more than 0 and less than 1m, got 0s"}},
		{"cpu_sample a minute", func(c *Config) { c.CPUSample = model.Duration(time.Minute) }, []string{
			"cpu_sample: must be more than 0 and less than 1m, got 1m"}},
		{"ratios", func(c *Config) {
			c.CPUMax, c.MemoryMax, c.DiskFreeMin, c.InodesFreeMin = 1.5, -0.1, math.NaN(), 2
		}, []string{
			"cpu_max: must be between 0 and 1, got 1.5",
			"memory_max: must be between 0 and 1, got -0.1",
			"disk_free_min: must be between 0 and 1, got NaN",
			"inodes_free_min: must be between 0 and 1, got 2",
		}},
		{"regexes", func(c *Config) { c.MountPointsInclude, c.MountPointsExclude, c.FSTypesExclude = "(", "[", "a**" }, []string{
			"mount_points_include: invalid regular expression: missing closing ): `(`",
			"mount_points_exclude: invalid regular expression: missing closing ]: `[`",
			"fs_types_exclude: invalid regular expression: invalid nested repetition operator: `**`",
		}},
		{"relative paths", func(c *Config) { c.ProcPath, c.RootPath = "proc", "host" }, []string{
			`proc_path: must be an absolute path, got "proc"`,
			`root_path: must be an absolute path, got "host"`,
		}},
		{"processes", func(c *Config) {
			c.Processes = []Process{
				{},
				{Name: "a", Pidfile: "/run/a.pid"},
				{Pidfile: "run/b.pid"},
				{Name: "pg"},
				{Pidfile: "/run/pg.pid"},
				{Pidfile: "/run/pg.pid", Label: "pg-main"},
			}
		}, []string{
			"processes.0: set name or pidfile",
			"processes.1.pidfile: set name or pidfile, not both",
			`processes.2.pidfile: must be an absolute path, got "run/b.pid"`,
			`processes.4.label: label "pg" is already used by processes.3`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			tt.mutate(c)
			var got []string
			for _, err := range confkit.FlattenErrors(c.Validate()) {
				var fe *confkit.FieldError
				if !errors.As(err, &fe) {
					t.Errorf("%v is not a FieldError", err)
					continue
				}
				got = append(got, fe.Field+": "+fe.Err.Error())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got\n\t%q\nwant\n\t%q", got, tt.want)
			}
		})
	}
}

func TestProcessLabel(t *testing.T) {
	for _, tt := range []struct {
		p    Process
		want string
	}{
		{Process{Name: "postgres"}, "postgres"},
		{Process{Name: "postgres", Label: "db"}, "db"},
		{Process{Pidfile: "/run/sshd.pid"}, "sshd"},
		{Process{Pidfile: "/run/postgresql/14-main.pid"}, "14-main"},
		{Process{Pidfile: "/var/run/crond"}, "crond"},
	} {
		if got := tt.p.label(); got != tt.want {
			t.Errorf("%+v: label %q, want %q", tt.p, got, tt.want)
		}
	}
}

// TestLiveProbe runs the check on this machine.
func TestLiveProbe(t *testing.T) {
	run := func(t *testing.T, cfg *Config) probes.Result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return build(t, cfg).Probe(ctx, slog.New(slog.DiscardHandler))
	}

	t.Run("defaults", func(t *testing.T) {
		r := run(t, defaultConfig())
		// Whether this machine is busy or full is not the test's business;
		// that everything could be read with the defaults is.
		if r.Reason == probes.ReasonError {
			t.Errorf("read errors: %s", r.Message)
		}
		if v := mustFind(t, r, "vigil_host_memory_total_bytes"); v <= 0 {
			t.Errorf("memory total %v", v)
		}
		if v := mustFind(t, r, "vigil_host_cpus"); v < 1 {
			t.Errorf("cpu count %v", v)
		}
		for _, name := range []string{"vigil_host_cpu_utilization_ratio", "vigil_host_memory_used_ratio", "vigil_host_filesystem_free_min_ratio"} {
			if v := mustFind(t, r, name); v < 0 || v > 1 {
				t.Errorf("%s = %v, not a ratio", name, v)
			}
		}
		if _, ok := find(r, "vigil_host_filesystem_size_bytes", probes.Label{Name: "mountpoint", Value: "/"}); !ok {
			t.Errorf("no filesystem for /: %+v", r.Values)
		}
		if _, ok := find(r, "vigil_host_processes"); ok {
			t.Error("process counts without processes configured")
		}
	})

	t.Run("processes", func(t *testing.T) {
		dir := t.TempDir()
		for name, content := range map[string]string{
			"self.pid":    strconv.Itoa(os.Getpid()) + "\n",
			"garbled.pid": "not a pid",
			"gone.pid":    "4194305", // above the kernel's largest pid_max
		} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		self := filepath.Base(os.Args[0])
		cfg := defaultConfig()
		cfg.CPUSample = model.Duration(100 * time.Millisecond)
		cfg.CPUMax, cfg.MemoryMax, cfg.DiskFreeMin, cfg.InodesFreeMin = 1, 1, 0, 0
		cfg.Processes = []Process{
			{Name: self},
			{Name: "no-such-process-vigil"},
			{Pidfile: filepath.Join(dir, "self.pid")},
			{Pidfile: filepath.Join(dir, "garbled.pid")},
			{Pidfile: filepath.Join(dir, "gone.pid")},
			{Pidfile: filepath.Join(dir, "absent.pid")},
		}
		r := run(t, cfg)
		if want := "process_missing: no-such-process-vigil, garbled, gone, absent not running"; r.Reason != probes.ReasonProcessMissing || r.Message != want {
			t.Errorf("got %q %q, want %q", r.Reason, r.Message, want)
		}
		for label, want := range map[string]float64{"self": 1, "no-such-process-vigil": 0, "gone": 0} {
			if got := mustFind(t, r, "vigil_host_processes", probes.Label{Name: "process", Value: label}); got != want {
				t.Errorf("process %s: count %v, want %v", label, got, want)
			}
		}
		if got := mustFind(t, r, "vigil_host_processes", probes.Label{Name: "process", Value: self}); got < 1 {
			t.Errorf("the test process %q itself was not found", self)
		}
		var phases []string
		for _, ph := range r.Phases {
			phases = append(phases, ph.Name)
		}
		if want := []string{"cpu", "memory", "filesystems", "processes"}; !slices.Equal(phases, want) {
			t.Errorf("phases %v, want %v", phases, want)
		}
	})
}

func TestProbeHonoursCancel(t *testing.T) {
	cfg := defaultConfig()
	cfg.CPUSample = model.Duration(50 * time.Second)
	p := build(t, cfg)
	for _, tt := range []struct {
		name    string
		timeout time.Duration
	}{
		{"deadline during the cpu sample", 100 * time.Millisecond},
		{"already cancelled", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			start := time.Now()
			r := p.Probe(ctx, slog.New(slog.DiscardHandler))
			if d := time.Since(start); d > tt.timeout+2*time.Second {
				t.Errorf("probe took %s with a %s deadline", d, tt.timeout)
			}
			if r.Success || r.Reason != probes.ReasonError {
				t.Errorf("a probe cut short reported success=%v reason=%q", r.Success, r.Reason)
			}
		})
	}
}
