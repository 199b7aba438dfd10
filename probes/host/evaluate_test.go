package host

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"

	"github.com/vigil-project/vigil/probes"
)

// find returns the value with this name whose labels include all of labels.
func find(r probes.Result, name string, labels ...probes.Label) (probes.Value, bool) {
next:
	for _, v := range r.Values {
		if v.Name != name {
			continue
		}
		for _, l := range labels {
			if !slices.Contains(v.Labels, l) {
				continue next
			}
		}
		return v, true
	}
	return probes.Value{}, false
}

func mustFind(t *testing.T, r probes.Result, name string, labels ...probes.Label) float64 {
	t.Helper()
	v, ok := find(r, name, labels...)
	if !ok {
		t.Fatalf("no value %s%v in %+v", name, labels, r.Values)
	}
	return v.Value
}

func healthy() sample {
	return sample{
		cpuUtil:  new(0.25),
		cpuCount: 4,
		load:     &load.AvgStat{Load1: 1, Load5: 0.5, Load15: 0.25},
		memory:   &mem.VirtualMemoryStat{Total: 1000, Available: 600, SwapTotal: 100, SwapFree: 90},
		filesystems: []filesystem{
			{mountpoint: "/", fstype: "ext4", device: "/dev/vda1", size: 1000, avail: 500, files: 100, filesFree: 50},
			// btrfs allocates inodes on demand and reports none.
			{mountpoint: "/data", fstype: "btrfs", device: "/dev/vdb", size: 1000, avail: 300},
		},
		processes: []processCount{{label: "postgres", count: 3}},
	}
}

func TestEvaluateThresholds(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*sample, *Config)
		reason  probes.Reason
		message string
	}{
		{"healthy", func(*sample, *Config) {}, probes.ReasonNone, ""},
		{"cpu high", func(s *sample, _ *Config) { s.cpuUtil = new(0.97) },
			probes.ReasonCPUHigh, "cpu_high: 97% busy > 90%"},
		{"cpu at the threshold passes", func(s *sample, _ *Config) { s.cpuUtil = new(0.9) },
			probes.ReasonNone, ""},
		{"cpu_max 1 disables", func(s *sample, c *Config) { s.cpuUtil, c.CPUMax = new(1.0), 1 },
			probes.ReasonNone, ""},
		{"memory high", func(s *sample, _ *Config) { s.memory.Available = 50 },
			probes.ReasonMemoryHigh, "memory_high: 95% used > 90%"},
		{"disk low", func(s *sample, _ *Config) { s.filesystems[1].avail = 41 },
			probes.ReasonDiskLow, "disk_low: /data 4.1% free < 10%"},
		{"disk_free_min 0 disables", func(s *sample, c *Config) { s.filesystems[1].avail, c.DiskFreeMin = 0, 0 },
			probes.ReasonNone, ""},
		{"inodes low", func(s *sample, _ *Config) { s.filesystems[0].filesFree = 2 },
			probes.ReasonInodesLow, "inodes_low: / 2% inodes free < 5%"},
		{"inode-less filesystem skipped", func(s *sample, c *Config) { c.InodesFreeMin, s.filesystems[0].filesFree = 0.9, 95 },
			probes.ReasonNone, ""},
		{"process missing", func(s *sample, _ *Config) {
			s.processes = append(s.processes, processCount{label: "nginx"}, processCount{label: "sync-worker"})
		}, probes.ReasonProcessMissing, "process_missing: nginx, sync-worker not running"},
		{"several: the most urgent is the reason, all are listed", func(s *sample, _ *Config) {
			s.cpuUtil, s.memory.Available = new(0.97), 50
			s.processes[0].count = 0
			s.filesystems[0].filesFree = 1
			s.filesystems[1].avail = 41
		}, probes.ReasonDiskLow, "disk_low: /data 4.1% free < 10%; inodes_low: / 1% inodes free < 5%; " +
			"memory_high: 95% used > 90%; cpu_high: 97% busy > 90%; process_missing: postgres not running"},
		{"read error alone", func(s *sample, _ *Config) {
			s.errs = []error{errors.New("memory: open /proc/meminfo: no such file or directory")}
		},
			probes.ReasonError, "could not read memory: open /proc/meminfo: no such file or directory"},
		{"a violation decides the reason over a read error", func(s *sample, _ *Config) {
			s.errs = []error{errors.New("filesystem /mnt/nfs: statfs did not return: context deadline exceeded")}
			s.memory.Available = 10
		}, probes.ReasonMemoryHigh, "memory_high: 99% used > 90%; could not read filesystem /mnt/nfs: statfs did not return: context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, cfg := healthy(), defaultConfig()
			tt.mutate(&s, cfg)
			r := evaluate(s, cfg)
			if r.Success != (tt.reason == probes.ReasonNone) || r.Reason != tt.reason || r.Message != tt.message {
				t.Errorf("got success=%v reason=%q message=%q\nwant reason=%q message=%q", r.Success, r.Reason, r.Message, tt.reason, tt.message)
			}
			if r.Success != (r.Diagnostics == nil) {
				t.Errorf("success=%v with diagnostics %v", r.Success, r.Diagnostics)
			}
			// Values are exported whatever the verdict.
			if got := mustFind(t, r, "vigil_host_filesystem_avail_bytes", probes.Label{Name: "mountpoint", Value: "/data"}); got != float64(s.filesystems[1].avail) {
				t.Errorf("avail /data = %v, want %v", got, s.filesystems[1].avail)
			}
			if got := mustFind(t, r, "vigil_host_memory_available_bytes"); got != float64(s.memory.Available) {
				t.Errorf("memory available = %v, want %v", got, s.memory.Available)
			}
		})
	}
}

func TestEvaluateDiagnostics(t *testing.T) {
	s := healthy()
	s.cpuUtil = new(0.95)
	s.filesystems[1].avail = 20
	s.errs = []error{errors.New("load: open /proc/loadavg: permission denied")}
	r := evaluate(s, defaultConfig())
	want := map[string]any{
		"violations": []string{"disk_low: /data 2% free < 10%", "cpu_high: 95% busy > 90%"},
		"filesystems": []fsReport{{
			Mountpoint: "/data", FSType: "btrfs", Device: "/dev/vdb",
			SizeBytes: 1000, AvailBytes: 20, FreeRatio: 0.02,
		}},
		"errors": []string{"could not read load: open /proc/loadavg: permission denied"},
	}
	if !reflect.DeepEqual(r.Diagnostics, want) {
		t.Errorf("diagnostics:\n got %#v\nwant %#v", r.Diagnostics, want)
	}
}

func TestEvaluateValues(t *testing.T) {
	root := []probes.Label{{Name: "mountpoint", Value: "/"}, {Name: "fstype", Value: "ext4"}, {Name: "device", Value: "/dev/vda1"}}
	tests := []struct {
		name   string
		labels []probes.Label
		want   float64
		key    bool
	}{
		{"vigil_host_cpu_utilization_ratio", nil, 0.25, true},
		{"vigil_host_cpus", nil, 4, false},
		{"vigil_host_load1", nil, 1, true},
		{"vigil_host_load5", nil, 0.5, false},
		{"vigil_host_load15", nil, 0.25, false},
		{"vigil_host_memory_total_bytes", nil, 1000, false},
		{"vigil_host_memory_available_bytes", nil, 600, false},
		{"vigil_host_memory_used_ratio", nil, 0.4, true},
		{"vigil_host_swap_total_bytes", nil, 100, false},
		{"vigil_host_swap_used_bytes", nil, 10, false},
		{"vigil_host_filesystem_size_bytes", root, 1000, false},
		{"vigil_host_filesystem_avail_bytes", root, 500, false},
		{"vigil_host_filesystem_files", root, 100, false},
		{"vigil_host_filesystem_files_free", root, 50, false},
		{"vigil_host_filesystem_free_min_ratio", nil, 0.3, true},
		{"vigil_host_processes", []probes.Label{{Name: "process", Value: "postgres"}}, 3, false},
	}
	r := evaluate(healthy(), defaultConfig())
	if want := len(tests) + 4; len(r.Values) != want { // + 4 series of /data
		t.Errorf("%d values, want %d: %+v", len(r.Values), want, r.Values)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := find(r, tt.name, tt.labels...)
			if !ok {
				t.Fatalf("missing")
			}
			if v.Value != tt.want || v.Key != tt.key || len(v.Labels) != len(tt.labels) {
				t.Errorf("got %+v, want value %v key %v labels %v", v, tt.want, tt.key, tt.labels)
			}
		})
	}
}

// A part that could not be read exports nothing rather than zeros, which
// would look like an empty machine.
func TestEvaluatePartialSample(t *testing.T) {
	s := sample{
		cpuCount: 2,
		errs:     []error{errors.New("cpu: context canceled"), errors.New("memory: open /proc/meminfo: no such file or directory")},
	}
	r := evaluate(s, defaultConfig())
	var names []string
	for _, v := range r.Values {
		names = append(names, v.Name)
	}
	if !slices.Equal(names, []string{"vigil_host_cpus"}) {
		t.Errorf("values %v, want only vigil_host_cpus", names)
	}
	if r.Reason != probes.ReasonError {
		t.Errorf("reason %q", r.Reason)
	}
}

func TestPercent(t *testing.T) {
	for in, want := range map[float64]string{0: "0%", 0.041: "4.1%", 0.1: "10%", 0.97: "97%", 0.12345: "12.3%", 1: "100%"} {
		if got := percent(in); got != want {
			t.Errorf("percent(%v) = %q, want %q", in, got, want)
		}
	}
}
