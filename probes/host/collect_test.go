package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/shirou/gopsutil/v4/disk"

	"github.com/vigil-project/vigil/probes"
)

// fixtureProber reads testdata/proc instead of /proc. Its root_path is a
// temporary directory holding the fixture's mount points, so statfs on
// them works (they all land on the temporary directory's filesystem).
func fixtureProber(t *testing.T, mutate func(*Config)) *Prober {
	t.Helper()
	proc, err := filepath.Abs("testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, d := range []string{"boot/efi", "data", "srv/invoices", "mnt/backup disk"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := defaultConfig()
	cfg.CPUSample = model.Duration(10 * time.Millisecond)
	cfg.ProcPath, cfg.RootPath = proc, root
	if mutate != nil {
		mutate(cfg)
	}
	return build(t, cfg)
}

func build(t *testing.T, cfg *Config) *Prober {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := newProber(cfg, probes.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Prober)
}

func TestPartitionsFixture(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"defaults", nil, []string{
			// The bind mount on /var/lib/docker is left out, the ext4 stacked
			// on /data hides the xfs below it, and the escaped space is read.
			"/ ext4 /dev/vda1",
			"/boot/efi vfat /dev/vda15",
			"/srv/invoices nfs4 files.internal:/export/invoices",
			"/data ext4 /dev/vdc",
			"/mnt/backup disk ext4 /dev/vdd1",
		}},
		{"include", func(c *Config) { c.MountPointsInclude = "^/(data|boot)($|/)" }, []string{
			"/boot/efi vfat /dev/vda15",
			"/data ext4 /dev/vdc",
		}},
		// The tmpfs stacked on /srv/tmp is what statfs would see, so it is
		// the entry the filters judge.
		{"no type filter", func(c *Config) { c.MountPointsInclude, c.FSTypesExclude = "^/(srv|tmp)($|/)", "" }, []string{
			"/srv/invoices nfs4 files.internal:/export/invoices",
			"/tmp tmpfs tmpfs",
			"/srv/tmp tmpfs tmpfs",
		}},
		{"type filter only", func(c *Config) { c.MountPointsExclude, c.FSTypesExclude = "", "^(ext4|xfs|vfat|nfs4)$" }, []string{
			"/proc proc proc",
			"/sys sysfs sysfs",
			"/dev devtmpfs devtmpfs",
			"/dev/shm tmpfs tmpfs",
			"/run tmpfs tmpfs",
			"/var/lib/docker/overlay2/3f1c/merged overlay overlay",
			"/run/user/1000 tmpfs tmpfs",
			"/tmp tmpfs tmpfs",
			"/snap/core22/1380 squashfs /dev/loop0",
			"/sys/fs/cgroup cgroup2 cgroup2",
			"/srv/tmp tmpfs tmpfs",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fixtureProber(t, tt.mutate)
			parts, err := p.partitions(p.hostContext(context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, part := range parts {
				got = append(got, fmt.Sprintf("%s %s %s", part.Mountpoint, part.Fstype, part.Device))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
		})
	}
}

func TestCollectFixture(t *testing.T) {
	p := fixtureProber(t, func(c *Config) {
		c.Processes = []Process{
			{Name: "postgres"},
			{Name: "nginx", Label: "web"},
			// comm holds only "invoice-sync-wo"; the full name comes from cmdline.
			{Name: "invoice-sync-worker"},
			{Name: "mysqld"},
		}
	})
	s := p.collect(context.Background())
	if len(s.errs) > 0 {
		t.Fatalf("errors reading fixtures: %v", s.errs)
	}
	const kB = 1024
	if m := s.memory; m.Total != 16384000*kB || m.Available != 1228800*kB || m.SwapTotal != 4194304*kB || m.SwapFree != 3145728*kB {
		t.Errorf("memory: total %d, available %d, swap total %d, swap free %d", m.Total, m.Available, m.SwapTotal, m.SwapFree)
	}
	if l := s.load; l.Load1 != 3.52 || l.Load5 != 2.10 || l.Load15 != 1.05 {
		t.Errorf("load = %+v", l)
	}
	// /proc/stat does not change between the two reads, so nothing was busy.
	if s.cpuCount != 2 || s.cpuUtil == nil || *s.cpuUtil != 0 {
		t.Errorf("cpu: count %d, utilisation %v", s.cpuCount, s.cpuUtil)
	}
	var mounts []string
	for _, fs := range s.filesystems {
		mounts = append(mounts, fs.mountpoint)
		if fs.size == 0 || fs.avail > fs.size {
			t.Errorf("%s: size %d, avail %d", fs.mountpoint, fs.size, fs.avail)
		}
	}
	if want := []string{"/", "/boot/efi", "/srv/invoices", "/data", "/mnt/backup disk"}; !slices.Equal(mounts, want) {
		t.Errorf("filesystems %q, want %q", mounts, want)
	}
	wantProcs := []processCount{{"postgres", 2}, {"web", 1}, {"invoice-sync-worker", 1}, {"mysqld", 0}}
	if !slices.Equal(s.processes, wantProcs) {
		t.Errorf("processes %+v, want %+v", s.processes, wantProcs)
	}
	var phases []string
	for _, ph := range s.phases {
		phases = append(phases, ph.Name)
	}
	if want := []string{"cpu", "memory", "filesystems", "processes"}; !slices.Equal(phases, want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
}

// A proc_path with nothing in it fails the check with probe_error, names
// what failed, and still exports what could be read elsewhere.
func TestCollectMissingProc(t *testing.T) {
	p := fixtureProber(t, func(c *Config) { c.ProcPath = filepath.Join(t.TempDir(), "proc") })
	r := p.Probe(context.Background(), slog.New(slog.DiscardHandler))
	if r.Success || r.Reason != probes.ReasonError {
		t.Fatalf("got success=%v reason=%q", r.Success, r.Reason)
	}
	for _, part := range []string{"could not read cpu:", "could not read memory:", "could not read filesystems:"} {
		if !strings.Contains(r.Message, part) {
			t.Errorf("message %q does not mention %q", r.Message, part)
		}
	}
	// The load average falls back to sysinfo(2), which needs no /proc.
	if _, ok := find(r, "vigil_host_load1"); !ok {
		t.Errorf("load not exported: %+v", r.Values)
	}
	if _, ok := find(r, "vigil_host_memory_total_bytes"); ok {
		t.Error("memory exported although it could not be read")
	}
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	p := build(t, defaultConfig())
	p.statfsInFlight["/hung"] = true // left over from an earlier run

	fss, errs := p.usage(context.Background(), []disk.PartitionStat{
		{Mountpoint: "/hung", Fstype: "nfs4", Device: "files:/export"},
		{Mountpoint: dir, Fstype: "ext4", Device: "/dev/vda1"},
		{Mountpoint: filepath.Join(dir, "missing"), Fstype: "ext4", Device: "/dev/vdb1"},
	})
	if len(fss) != 1 || fss[0].mountpoint != dir || fss[0].size == 0 {
		t.Errorf("filesystems %+v, want %s only", fss, dir)
	}
	if len(errs) != 2 || !errors.Is(errs[0], errStillHung) || !strings.HasPrefix(errs[1].Error(), "filesystem "+dir+"/missing: ") {
		t.Errorf("errors %v", errs)
	}
	if !p.statfsInFlight["/hung"] || len(p.statfsInFlight) != 1 {
		t.Errorf("in flight after the run: %v", p.statfsInFlight)
	}
}
