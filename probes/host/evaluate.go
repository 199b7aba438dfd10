package host

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-project/vigil/probes"
)

// reasonOrder decides the reason when several thresholds fail: a full disk
// stops invoices from being stored, a busy CPU only slows them down.
var reasonOrder = []probes.Reason{
	probes.ReasonDiskLow,
	probes.ReasonInodesLow,
	probes.ReasonMemoryHigh,
	probes.ReasonCPUHigh,
	probes.ReasonProcessMissing,
}

type violation struct {
	reason probes.Reason
	text   string
}

// fsReport describes a filesystem that failed a threshold, for the API and UI.
type fsReport struct {
	Mountpoint string  `json:"mountpoint"`
	FSType     string  `json:"fstype"`
	Device     string  `json:"device"`
	SizeBytes  uint64  `json:"size_bytes"`
	AvailBytes uint64  `json:"avail_bytes"`
	FreeRatio  float64 `json:"free_ratio"`
	Files      uint64  `json:"files"`
	FilesFree  uint64  `json:"files_free"`
}

// evaluate exports every value in s and judges them against cfg's
// thresholds. All violations are listed in the message; the reason is the
// first of them in reasonOrder.
func evaluate(s sample, cfg *Config) probes.Result {
	res := probes.Result{Phases: s.phases}
	var vs []violation
	fail := func(r probes.Reason, format string, args ...any) {
		vs = append(vs, violation{r, fmt.Sprintf(format, args...)})
	}

	if s.cpuUtil != nil {
		u := *s.cpuUtil
		res.AddKeyValue("vigil_host_cpu_utilization_ratio", u)
		if u > cfg.CPUMax {
			fail(probes.ReasonCPUHigh, "%s busy > %s", percent(u), percent(cfg.CPUMax))
		}
	}
	if s.cpuCount > 0 {
		res.AddValue("vigil_host_cpus", float64(s.cpuCount))
	}
	if l := s.load; l != nil {
		res.AddKeyValue("vigil_host_load1", l.Load1)
		res.AddValue("vigil_host_load5", l.Load5)
		res.AddValue("vigil_host_load15", l.Load15)
	}
	if m := s.memory; m != nil && m.Total > 0 {
		used := 1 - ratio(m.Available, m.Total)
		res.AddValue("vigil_host_memory_total_bytes", float64(m.Total))
		res.AddValue("vigil_host_memory_available_bytes", float64(m.Available))
		res.AddKeyValue("vigil_host_memory_used_ratio", used)
		res.AddValue("vigil_host_swap_total_bytes", float64(m.SwapTotal))
		res.AddValue("vigil_host_swap_used_bytes", float64(m.SwapTotal-m.SwapFree))
		if used > cfg.MemoryMax {
			fail(probes.ReasonMemoryHigh, "%s used > %s", percent(used), percent(cfg.MemoryMax))
		}
	}

	minFree := math.Inf(1)
	var failing []fsReport
	for _, fs := range s.filesystems {
		labels := []probes.Label{
			{Name: "mountpoint", Value: fs.mountpoint},
			{Name: "fstype", Value: fs.fstype},
			{Name: "device", Value: fs.device},
		}
		res.AddValue("vigil_host_filesystem_size_bytes", float64(fs.size), labels...)
		res.AddValue("vigil_host_filesystem_avail_bytes", float64(fs.avail), labels...)
		res.AddValue("vigil_host_filesystem_files", float64(fs.files), labels...)
		res.AddValue("vigil_host_filesystem_files_free", float64(fs.filesFree), labels...)

		low := false
		if fs.size > 0 {
			free := ratio(fs.avail, fs.size)
			minFree = min(minFree, free)
			if free < cfg.DiskFreeMin {
				fail(probes.ReasonDiskLow, "%s %s free < %s", fs.mountpoint, percent(free), percent(cfg.DiskFreeMin))
				low = true
			}
		}
		// Filesystems that allocate inodes on demand (btrfs, many FUSE
		// ones) report none, which is not the same as none left.
		if fs.files > 0 {
			if free := ratio(fs.filesFree, fs.files); free < cfg.InodesFreeMin {
				fail(probes.ReasonInodesLow, "%s %s inodes free < %s", fs.mountpoint, percent(free), percent(cfg.InodesFreeMin))
				low = true
			}
		}
		if low {
			failing = append(failing, fsReport{
				Mountpoint: fs.mountpoint, FSType: fs.fstype, Device: fs.device,
				SizeBytes: fs.size, AvailBytes: fs.avail, FreeRatio: ratio(fs.avail, fs.size),
				Files: fs.files, FilesFree: fs.filesFree,
			})
		}
	}
	if !math.IsInf(minFree, 1) {
		res.AddKeyValue("vigil_host_filesystem_free_min_ratio", minFree)
	}

	var missing []string
	for _, pc := range s.processes {
		res.AddValue("vigil_host_processes", float64(pc.count), probes.Label{Name: "process", Value: pc.label})
		if pc.count == 0 {
			missing = append(missing, pc.label)
		}
	}
	if len(missing) > 0 {
		fail(probes.ReasonProcessMissing, "%s not running", strings.Join(missing, ", "))
	}

	if len(vs) == 0 && len(s.errs) == 0 {
		res.Success = true
		return res
	}
	slices.SortStableFunc(vs, func(a, b violation) int {
		return cmp.Compare(slices.Index(reasonOrder, a.reason), slices.Index(reasonOrder, b.reason))
	})
	// A failed threshold decides the reason over a part that could not be
	// read, so a rule on disk_low keeps firing while some other mount hangs.
	res.Reason = probes.ReasonError
	if len(vs) > 0 {
		res.Reason = vs[0].reason
	}
	var violations, errs []string
	for _, v := range vs {
		violations = append(violations, string(v.reason)+": "+v.text)
	}
	for _, err := range s.errs {
		errs = append(errs, "could not read "+err.Error())
	}
	res.Message = strings.Join(slices.Concat(violations, errs), "; ")
	res.Diagnostics = map[string]any{}
	if len(violations) > 0 {
		res.Diagnostics["violations"] = violations
	}
	if len(failing) > 0 {
		res.Diagnostics["filesystems"] = failing
	}
	if len(errs) > 0 {
		res.Diagnostics["errors"] = errs
	}
	return res
}

func ratio(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// percent renders a ratio with at most one decimal: "4.1%", "10%".
func percent(r float64) string {
	return strconv.FormatFloat(math.Round(r*1000)/10, 'f', -1, 64) + "%"
}
