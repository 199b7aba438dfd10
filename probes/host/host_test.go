package host

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"

	"github.com/vigil-project/vigil/probes"
)

func value(t *testing.T, r probes.Result, name string, labels ...probes.Label) float64 {
	t.Helper()
next:
	for _, v := range r.Values {
		if v.Name != name {
			continue
		}
		for _, want := range labels {
			found := false
			for _, l := range v.Labels {
				found = found || l == want
			}
			if !found {
				continue next
			}
		}
		return v.Value
	}
	t.Fatalf("no value %s%v in %+v", name, labels, r.Values)
	return 0
}

func healthy() sample {
	return sample{
		cpuUtil:  0.25,
		cpuCount: 4,
		load:     &load.AvgStat{Load1: 1, Load5: 0.5, Load15: 0.25},
		memory:   &mem.VirtualMemoryStat{Total: 1000, Available: 600},
		swap:     &mem.SwapMemoryStat{Total: 100, Used: 10},
		fs: []filesystem{
			{mountpoint: "/", fstype: "ext4", device: "/dev/vda", size: 1000, avail: 500, files: 100, filesFree: 50},
			{mountpoint: "/data", fstype: "btrfs", device: "/dev/vdb", size: 1000, avail: 300, files: 0, filesFree: 0},
		},
		processes: []processCount{{label: "postgres", count: 3}},
	}
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*sample, *Config)
		reason  probes.Reason
		message string
	}{
		{"healthy", func(*sample, *Config) {}, probes.ReasonNone, ""},
		{"cpu high", func(s *sample, _ *Config) { s.cpuUtil = 0.97 }, probes.ReasonCPUHigh, "cpu_high: cpu 97.0% busy > 90.0%"},
		{"cpu threshold 1 disables", func(s *sample, c *Config) { s.cpuUtil = 1; c.CPUMax = 1 }, probes.ReasonNone, ""},
		{"memory high", func(s *sample, _ *Config) { s.memory.Available = 50 }, probes.ReasonMemoryHigh, "memory_high: memory 95.0% used > 90.0%"},
		{"disk low", func(s *sample, _ *Config) { s.fs[1].avail = 41 }, probes.ReasonDiskLow, "disk_low: /data 4.1% free < 10.0%"},
		{"disk threshold 0 disables", func(s *sample, c *Config) { s.fs[1].avail = 0; c.DiskFreeMin = 0 }, probes.ReasonNone, ""},
		{"inodes low", func(s *sample, _ *Config) { s.fs[0].filesFree = 2 }, probes.ReasonInodesLow, "inodes_low: / 2.0% inodes free < 5.0%"},
		{"inode-less filesystem skipped", func(s *sample, c *Config) { c.InodesFreeMin = 0.9; s.fs[0].filesFree = 95 }, probes.ReasonNone, ""},
		{"process missing", func(s *sample, _ *Config) {
			s.processes = append(s.processes, processCount{label: "nginx"}, processCount{label: "sync-worker"})
		}, probes.ReasonProcessMissing, "process_missing: not running: nginx, sync-worker"},
		{"several: most urgent reason, all listed", func(s *sample, _ *Config) {
			s.cpuUtil, s.memory.Available, s.fs[0].avail = 0.95, 10, 10
		}, probes.ReasonDiskLow, "cpu_high: cpu 95.0% busy > 90.0%; memory_high: memory 99.0% used > 90.0%; disk_low: / 1.0% free < 10.0%"},
		{"read error alone", func(s *sample, _ *Config) { s.errs = []string{"memory: open /proc/meminfo: no such file"} },
			probes.ReasonError, "could not read memory: open /proc/meminfo: no such file"},
		{"violation beats read error", func(s *sample, _ *Config) { s.errs = []string{"swap: x"}; s.fs[0].avail = 1 },
			probes.ReasonDiskLow, "disk_low: / 0.1% free < 10.0%; could not read swap: x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, cfg := healthy(), defaultConfig()
			tt.mutate(&s, cfg)
			var r probes.Result
			evaluate(s, cfg, &r)
			if r.Success != (tt.reason == probes.ReasonNone) || r.Reason != tt.reason || r.Message != tt.message {
				t.Errorf("got success=%v reason=%q message=%q\nwant reason=%q message=%q", r.Success, r.Reason, r.Message, tt.reason, tt.message)
			}
			// Values are exported whatever the verdict.
			if got := value(t, r, "vigil_host_filesystem_avail_bytes", probes.Label{Name: "mountpoint", Value: "/data"}); got != float64(s.fs[1].avail) {
				t.Errorf("avail /data = %v", got)
			}
			if got := value(t, r, "vigil_host_process_count", probes.Label{Name: "process", Value: "postgres"}); got != 3 {
				t.Errorf("process count = %v", got)
			}
		})
	}
}

func TestEvaluateValues(t *testing.T) {
	var r probes.Result
	evaluate(healthy(), defaultConfig(), &r)
	for name, want := range map[string]float64{
		"vigil_host_cpu_utilization_ratio":     0.25,
		"vigil_host_cpu_count":                 4,
		"vigil_host_load1":                     1,
		"vigil_host_load15":                    0.25,
		"vigil_host_memory_used_ratio":         0.4,
		"vigil_host_memory_available_bytes":    600,
		"vigil_host_swap_used_bytes":           10,
		"vigil_host_filesystem_free_min_ratio": 0.3,
	} {
		if got := value(t, r, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func fixtureProber(t *testing.T, mutate func(*Config)) *Prober {
	t.Helper()
	proc, err := filepath.Abs("testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	// Mount points of the fixture resolve under a real temporary root so
	// statfs works on them.
	root := t.TempDir()
	for _, d := range []string{"data", "boot/efi"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	cfg := defaultConfig()
	cfg.CPUSample = model.Duration(10 * time.Millisecond)
	cfg.ProcPath, cfg.RootPath = proc, root
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := newProber(cfg, probes.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Prober)
}

func TestCollectFixtures(t *testing.T) {
	p := fixtureProber(t, nil)
	var r probes.Result
	s := p.collect(context.Background(), &r)
	if len(s.errs) > 0 {
		t.Fatalf("errors reading fixtures: %v", s.errs)
	}
	if s.memory.Total != 16384000*1024 || s.memory.Available != 1228800*1024 {
		t.Errorf("memory = %d total, %d available", s.memory.Total, s.memory.Available)
	}
	// Swap totals come from the sysinfo(2) syscall, not from proc_path, so
	// the fixture cannot pin them; the live test covers swap.
	if s.load.Load1 != 3.52 || s.load.Load5 != 2.10 || s.load.Load15 != 1.05 {
		t.Errorf("load = %+v", s.load)
	}
	var mounts []string
	for _, fs := range s.fs {
		mounts = append(mounts, fs.mountpoint+" "+fs.fstype+" "+fs.device)
		if fs.size == 0 {
			t.Errorf("%s: size 0", fs.mountpoint)
		}
	}
	// /proc, /dev, /dev/shm and docker's tree are filtered; /data is listed once.
	if got, want := strings.Join(mounts, ", "), "/ ext4 /dev/vda, /data xfs /dev/vdb1, /boot/efi vfat /dev/vda15"; got != want {
		t.Errorf("filesystems = %s\nwant %s", got, want)
	}
	var phases []string
	for _, ph := range r.Phases {
		phases = append(phases, ph.Name)
	}
	if strings.Join(phases, ",") != "cpu,memory,filesystems" {
		t.Errorf("phases = %v", phases)
	}

	p = fixtureProber(t, func(c *Config) { c.MountPointsInclude = "^/data$" })
	s = p.collect(context.Background(), &probes.Result{})
	if len(s.fs) != 1 || s.fs[0].mountpoint != "/data" {
		t.Errorf("include filter: %+v", s.fs)
	}
}

func TestCollectMissingProc(t *testing.T) {
	p := fixtureProber(t, func(c *Config) { c.ProcPath = "/nonexistent/proc" })
	r := p.Probe(context.Background(), slog.New(slog.DiscardHandler))
	if r.Success || r.Reason != probes.ReasonError || !strings.Contains(r.Message, "could not read memory") {
		t.Errorf("got %v %q %q", r.Success, r.Reason, r.Message)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"defaults", func(*Config) {}, nil},
		{"ratios", func(c *Config) { c.CPUMax, c.InodesFreeMin = 2, -1 }, []string{
			"cpu_max: must be between 0 and 1, got 2", "inodes_free_min: must be between 0 and 1, got -1"}},
		{"cpu sample", func(c *Config) { c.CPUSample = model.Duration(time.Hour) }, []string{
			"cpu_sample: must be greater than 0 and less than 1m, got 1h"}},
		{"regex", func(c *Config) { c.FSTypesExclude = "[" }, []string{
			"fs_types_exclude: invalid regular expression: missing closing ]: `[`"}},
		{"processes", func(c *Config) {
			c.Processes = []Process{{}, {Name: "a", Pidfile: "/run/a.pid"}, {Name: "pg"}, {Pidfile: "/run/pg.pid"}}
		}, []string{
			"processes.0: set one of name or pidfile",
			"processes.1.pidfile: set only one of name or pidfile",
			`processes.3: duplicate process label "pg" (also processes[2]); set label`}},
		{"relative paths", func(c *Config) { c.ProcPath = "proc" }, []string{`proc_path: must be an absolute path, got "proc"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			tt.mutate(c)
			var got []string
			for _, err := range probes.FlattenErrors(c.Validate()) {
				var fe *probes.FieldError
				if !errors.As(err, &fe) {
					t.Errorf("%v is not a FieldError", err)
				}
				got = append(got, err.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestLiveProbe runs the check on this machine.
func TestLiveProbe(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(self)
	if len(name) > 15 { // the kernel's comm is cut at 15 bytes
		name = name[:15]
	}
	cfg := defaultConfig()
	cfg.CPUSample = model.Duration(200 * time.Millisecond)
	cfg.CPUMax, cfg.MemoryMax, cfg.DiskFreeMin, cfg.InodesFreeMin = 1, 1, 0, 0
	cfg.Processes = []Process{{Name: name}, {Name: "no-such-process-vigil"}}
	p, err := newProber(cfg, probes.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := p.Probe(ctx, slog.New(slog.DiscardHandler))
	if r.Reason != probes.ReasonProcessMissing || r.Message != "process_missing: not running: no-such-process-vigil" {
		t.Errorf("got %q %q", r.Reason, r.Message)
	}
	if n := value(t, r, "vigil_host_process_count", probes.Label{Name: "process", Value: name}); n < 1 {
		t.Errorf("the test process %q itself was not found", name)
	}
	if v := value(t, r, "vigil_host_memory_total_bytes"); v <= 0 {
		t.Errorf("memory total %v", v)
	}
	if v := value(t, r, "vigil_host_cpu_count"); v < 1 {
		t.Errorf("cpu count %v", v)
	}
	if v := value(t, r, "vigil_host_cpu_utilization_ratio"); v < 0 || v > 1 {
		t.Errorf("cpu utilisation %v", v)
	}
	if v := value(t, r, "vigil_host_filesystem_free_min_ratio"); v < 0 || v > 1 {
		t.Errorf("free ratio %v", v)
	}
}

func TestProbeHonoursCancel(t *testing.T) {
	cfg := defaultConfig()
	cfg.CPUSample = model.Duration(30 * time.Second)
	p, _ := newProber(cfg, probes.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := p.Probe(ctx, slog.New(slog.DiscardHandler))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("probe took %s after its ctx ended", d)
	}
	if r.Success {
		t.Error("a probe cut short by its ctx reported success")
	}
}
