// Package logscan is the logscan check: it follows log files continuously —
// through rename and copytruncate rotation, deletion and restarts — and
// turns lines matching patterns into counters. Offsets and counters are
// checkpointed together, so nothing is lost or counted twice across a
// restart; an Aho-Corasick prefilter over each pattern's required literals
// keeps the cost per line low.
package logscan

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-project/vigil/probes"
)

func init() {
	probes.Register(probes.Family{Type: "logscan", Step: probes.StepLogs, NewConfig: func() probes.Config { return defaultConfig() }, New: newLogscan,
		Metrics: []probes.Metric{
			{Name: "vigil_log_lines_total", Help: "Lines read from the check's files."},
			{Name: "vigil_log_bytes_read_total", Help: "Bytes read from the check's files."},
			{Name: "vigil_log_matches_total", Help: "Lines matching each pattern, with its labels_from_groups labels."},
			{Name: "vigil_log_rotations_total", Help: "Files rotated away (renamed, deleted or replaced)."},
			{Name: "vigil_log_truncations_total", Help: "Files truncated in place (copytruncate)."},
			{Name: "vigil_log_long_lines_total", Help: "Lines longer than max_line_bytes, matched on their head."},
			{Name: "vigil_log_last_match_timestamp_seconds", Help: "Time of the last line matching each pattern, Unix time."},
			{Name: "vigil_log_files", Help: "Files being read, rotated ones still draining included."},
		}})
}

// Logscan is the check.
type Logscan struct {
	cfg       *Config
	check     string
	stateFile string
	log       *slog.Logger
	patterns  []Pattern

	c *counters

	// managed: inside the agent, which runs Run for the life of the check;
	// Probe then only evaluates, after Run's first pass (ready).
	managed bool
	ready   chan struct{}
	once    sync.Once

	mu      sync.Mutex
	running bool
	files   int
	summary string
	errs    map[string]string
	// evaluated are the pattern totals at the last Probe, for thresholds.
	evaluated []uint64
	lines     uint64

	// While Run keeps a checkpoint, the exported counters are the last
	// saved ones (pub), never ahead of what a restart resumes from (see
	// session.go). want counts the scrapes asking for fresh values, done
	// is the last one a publication answered, pubCh is closed at each
	// publication and kick wakes Run.
	pub   *counts
	want  atomic.Uint64
	done  uint64
	pubCh chan struct{}
	kick  chan struct{}
}

var (
	_ probes.Prober    = (*Logscan)(nil)
	_ probes.Runner    = (*Logscan)(nil)
	_ probes.Collector = (*Logscan)(nil)
)

func newLogscan(c probes.Config, opts probes.Options) (probes.Prober, error) {
	cfg, ok := c.(*Config)
	if !ok {
		return nil, fmt.Errorf("logscan: config of type %T", c)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Logscan{cfg: cfg, check: opts.CheckName, log: log, patterns: cfg.Patterns, c: newCounters(cfg.Patterns),
		managed: opts.StateDir != "", ready: make(chan struct{}),
		pubCh: make(chan struct{}), kick: make(chan struct{}, 1)}
	switch {
	case cfg.StateFile != "":
		l.stateFile = cfg.StateFile
	case opts.StateDir != "":
		l.stateFile = filepath.Join(opts.StateDir, "logscan-"+opts.CheckName+".json")
	}
	// Compile once here to report slow patterns when the config loads.
	_, slow, err := newMatcher(cfg.Patterns)
	if err != nil {
		return nil, err
	}
	for _, name := range slow {
		log.Warn("logscan pattern has no required literal: every line runs its full regex", "pattern", name)
	}
	return l, nil
}

// Run follows the files until ctx ends, checkpointing as it goes.
func (l *Logscan) Run(ctx context.Context, log *slog.Logger) {
	s := l.open(log)
	l.setRunning(true)
	defer func() {
		s.close()
		l.setRunning(false)
	}()

	wake := watch(ctx, l.cfg, log)
	poll := time.NewTicker(time.Duration(l.cfg.PollInterval))
	defer poll.Stop()
	for {
		s.pass()
		l.publish(s.t)
		l.once.Do(func() { close(l.ready) })
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-wake:
		case <-l.kick:
			// A scrape waits: read what is new first, so that it sees
			// what was written before it.
		}
	}
}

// publish copies what Probe reports.
func (l *Logscan) publish(t *tailer) {
	errs := make(map[string]string, len(t.errs))
	for k, v := range t.errs {
		errs[k] = v
	}
	l.mu.Lock()
	l.files, l.summary, l.errs = len(t.files)+len(t.drain), t.describe(), errs
	l.mu.Unlock()
}

// Collect returns the counters to export. While Run keeps a checkpoint
// these are the saved ones, never ahead of what a restart resumes from, so
// they only go up across a kill -9; to show what has been counted, the
// scrape asks Run to checkpoint it and waits (at most collectWait).
func (l *Logscan) Collect() []probes.Value {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		return l.exported()
	}
	gen := l.want.Add(1)
	timeout := time.NewTimer(collectWait)
	defer timeout.Stop()
	for l.running && l.done < gen {
		ch := l.pubCh
		l.mu.Unlock()
		select {
		case l.kick <- struct{}{}:
		default:
		}
		timedOut := false
		select {
		case <-ch:
		case <-timeout.C:
			timedOut = true
		}
		l.mu.Lock()
		if timedOut {
			break
		}
	}
	return l.exported()
}

// Probe evaluates the counts since the previous evaluation. Outside the
// agent (vigil once) it reads the files once itself first.
func (l *Logscan) Probe(ctx context.Context, log *slog.Logger) probes.Result {
	if l.managed {
		// The first evaluation waits for Run to have restored the
		// checkpoint and read once; reading here too would count twice.
		select {
		case <-l.ready:
		case <-ctx.Done():
			return probes.Failf(probes.ReasonTimeout, "the log reader has not started yet")
		}
	} else {
		l.mu.Lock()
		running := l.running
		l.mu.Unlock()
		if !running {
			l.scanOnce(log)
		}
	}
	totals, lines := l.c.totals()
	l.mu.Lock()
	prev := l.evaluated
	l.mu.Unlock()
	// Read under the counters' lock only: Run may hold it while it
	// publishes under l.mu.
	reports := l.c.reports(prev, totals)
	l.mu.Lock()
	defer l.mu.Unlock()
	prev, prevLines := l.evaluated, l.lines
	if len(prev) != len(totals) {
		prev = make([]uint64, len(totals))
	}
	l.evaluated, l.lines = totals, lines

	var res probes.Result
	var over, counts []string
	for i, p := range l.patterns {
		d := totals[i] - prev[i]
		counts = append(counts, fmt.Sprintf("%s=%d", p.Name, d))
		if p.Threshold > 0 && d >= uint64(p.Threshold) {
			over = append(over, fmt.Sprintf("%s matched %d lines (threshold %d)", p.Name, d, p.Threshold))
		}
	}
	summary := fmt.Sprintf("%d new lines in %s; matches %s", lines-prevLines, l.summary, strings.Join(counts, " "))
	// Per pattern: the matches of this interval and their last lines.
	res.Diagnostics = map[string]any{"patterns": reports}
	if len(l.errs) > 0 {
		res.Diagnostics["unreadable"] = l.errs
	}
	switch {
	case len(over) > 0:
		res.Reason, res.Message = probes.ReasonPatternThreshold, strings.Join(over, "; ")+" — "+summary
	case len(l.errs) > 0:
		paths := make([]string, 0, len(l.errs))
		for p := range l.errs {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		res.Reason = probes.ReasonLogUnreadable
		res.Message = fmt.Sprintf("cannot read %s: %s", paths[0], l.errs[paths[0]])
		if len(paths) > 1 {
			res.Message += fmt.Sprintf(" (and %d more)", len(paths)-1)
		}
	case l.files == 0 && !l.cfg.AllowMissing:
		res.Reason, res.Message = probes.ReasonLogMissing, fmt.Sprintf("no file matches %s", strings.Join(l.cfg.Paths, ", "))
	default:
		res.Success, res.Message = true, summary
	}
	return res
}

// scanOnce reads the files once without keeping state (vigil once).
func (l *Logscan) scanOnce(log *slog.Logger) {
	m, _, _ := newMatcher(l.patterns)
	t := newTailer(l.cfg, m, l.c, log)
	if l.stateFile != "" {
		if cp, ok, err := loadCheckpoint(l.stateFile); err == nil && ok {
			t.restore(cp)
		}
	}
	totals, lines := l.c.totals()
	t.poll()
	t.close()
	l.publish(t)
	l.mu.Lock()
	if l.evaluated == nil {
		l.evaluated, l.lines = totals, lines
	}
	l.mu.Unlock()
}
