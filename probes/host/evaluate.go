package host

import (
	"fmt"
	"math"
	"strings"

	"github.com/vigil-project/vigil/probes"
)

// evaluate exports the sample's values and judges them against the
// thresholds. Several violations are all listed; the reason is the most
// urgent one (a full disk stops invoice storage before a busy CPU does).
func evaluate(s sample, cfg *Config, res *probes.Result) {
	type violation struct {
		reason probes.Reason
		text   string
	}
	var vs []violation
	add := func(r probes.Reason, format string, args ...any) {
		vs = append(vs, violation{r, fmt.Sprintf(format, args...)})
	}

	if s.cpuUtil >= 0 {
		res.AddKeyValue("vigil_host_cpu_utilization_ratio", s.cpuUtil)
		if s.cpuUtil > cfg.CPUMax {
			add(probes.ReasonCPUHigh, "cpu %s busy > %s", pct(s.cpuUtil), pct(cfg.CPUMax))
		}
	}
	if s.cpuCount > 0 {
		res.AddValue("vigil_host_cpu_count", float64(s.cpuCount))
	}
	if s.load != nil {
		res.AddKeyValue("vigil_host_load1", s.load.Load1)
		res.AddValue("vigil_host_load5", s.load.Load5)
		res.AddValue("vigil_host_load15", s.load.Load15)
	}
	if m := s.memory; m != nil && m.Total > 0 {
		used := 1 - float64(m.Available)/float64(m.Total)
		res.AddValue("vigil_host_memory_total_bytes", float64(m.Total))
		res.AddValue("vigil_host_memory_available_bytes", float64(m.Available))
		res.AddKeyValue("vigil_host_memory_used_ratio", used)
		if used > cfg.MemoryMax {
			add(probes.ReasonMemoryHigh, "memory %s used > %s", pct(used), pct(cfg.MemoryMax))
		}
	}
	if sw := s.swap; sw != nil {
		res.AddValue("vigil_host_swap_total_bytes", float64(sw.Total))
		res.AddValue("vigil_host_swap_used_bytes", float64(sw.Used))
	}

	minFree := math.Inf(1)
	var lowDisk, lowInodes []string
	for _, fs := range s.fs {
		labels := []probes.Label{{Name: "mountpoint", Value: fs.mountpoint}, {Name: "fstype", Value: fs.fstype}, {Name: "device", Value: fs.device}}
		res.AddValue("vigil_host_filesystem_size_bytes", float64(fs.size), labels...)
		res.AddValue("vigil_host_filesystem_avail_bytes", float64(fs.avail), labels...)
		res.AddValue("vigil_host_filesystem_files", float64(fs.files), labels...)
		res.AddValue("vigil_host_filesystem_files_free", float64(fs.filesFree), labels...)
		if fs.size > 0 {
			free := float64(fs.avail) / float64(fs.size)
			minFree = min(minFree, free)
			if free < cfg.DiskFreeMin {
				lowDisk = append(lowDisk, fmt.Sprintf("%s %s free < %s", fs.mountpoint, pct(free), pct(cfg.DiskFreeMin)))
			}
		}
		// Filesystems without a fixed inode table (btrfs, some FUSE) report 0.
		if fs.files > 0 {
			if free := float64(fs.filesFree) / float64(fs.files); free < cfg.InodesFreeMin {
				lowInodes = append(lowInodes, fmt.Sprintf("%s %s inodes free < %s", fs.mountpoint, pct(free), pct(cfg.InodesFreeMin)))
			}
		}
	}
	if !math.IsInf(minFree, 1) {
		res.AddKeyValue("vigil_host_filesystem_free_min_ratio", minFree)
	}
	for _, t := range lowDisk {
		add(probes.ReasonDiskLow, "%s", t)
	}
	for _, t := range lowInodes {
		add(probes.ReasonInodesLow, "%s", t)
	}

	var missing []string
	for _, pc := range s.processes {
		res.AddValue("vigil_host_process_count", float64(pc.count), probes.Label{Name: "process", Value: pc.label})
		if pc.count == 0 {
			missing = append(missing, pc.label)
		}
	}
	if len(missing) > 0 {
		add(probes.ReasonProcessMissing, "not running: %s", strings.Join(missing, ", "))
	}

	// A threshold violation says more than a value that could not be read,
	// so it decides the reason; read errors alone fail with probe_error.
	order := []probes.Reason{probes.ReasonDiskLow, probes.ReasonInodesLow, probes.ReasonMemoryHigh, probes.ReasonCPUHigh, probes.ReasonProcessMissing}
	texts := make([]string, 0, len(vs)+len(s.errs))
	best := -1
	for _, v := range vs {
		texts = append(texts, string(v.reason)+": "+v.text)
		for i, r := range order {
			if r == v.reason && (best < 0 || i < best) {
				best = i
			}
		}
	}
	for _, e := range s.errs {
		texts = append(texts, "could not read "+e)
	}
	switch {
	case best >= 0:
		res.Reason = order[best]
	case len(s.errs) > 0:
		res.Reason = probes.ReasonError
	default:
		res.Success = true
		return
	}
	res.Message = strings.Join(texts, "; ")
	res.Diagnostics = map[string]any{"problems": texts}
}

func pct(r float64) string {
	return fmt.Sprintf("%.1f%%", r*100)
}
