package logscan

import (
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/vigil-project/vigil/probes"
)

const (
	defaultMaxLabelValues = 100
	maxLabelValueBytes    = 64
	otherValue            = "other"
)

// counters are the check's totals. They are saved in the checkpoint with
// the offsets they correspond to, so a restart resumes both together.
type counters struct {
	mu          sync.Mutex
	lines       uint64
	bytes       uint64
	rotations   uint64
	truncations uint64
	longLines   uint64
	patterns    []patternCounts
}

type patternCounts struct {
	name       string
	labelNames []string
	maxValues  int
	total      uint64
	lastMatch  float64 // Unix seconds, 0 before the first match
	series     map[string]*series
	// recent are the last matching lines (in memory only: not in the
	// checkpoint, so none after a restart until lines match again).
	recent *recentLines
}

type series struct {
	labels []string
	n      uint64
}

func newCounters(ps []Pattern) *counters {
	c := &counters{}
	for _, p := range ps {
		max := p.MaxLabelValues
		if max == 0 {
			max = defaultMaxLabelValues
		}
		pc := patternCounts{name: p.Name, labelNames: p.LabelsFromGroups, maxValues: max, series: map[string]*series{}, recent: &recentLines{}}
		if len(p.LabelsFromGroups) == 0 {
			pc.series[""] = &series{}
		}
		c.patterns = append(c.patterns, pc)
	}
	return c
}

// reset zeroes every count (a Run starts from its checkpoint, not from
// what a one-off scan counted before).
func (c *counters) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines, c.bytes, c.rotations, c.truncations, c.longLines = 0, 0, 0, 0, 0
	for i := range c.patterns {
		pc := &c.patterns[i]
		pc.total, pc.lastMatch = 0, 0
		pc.recent.reset()
		pc.series = map[string]*series{}
		if len(pc.labelNames) == 0 {
			pc.series[""] = &series{}
		}
	}
}

// match counts one matching line and keeps it among the pattern's recent
// lines; the caller holds mu. values are the label values (nil for
// patterns without labels).
func (c *counters) match(p int, values []string, line []byte, now float64) {
	pc := &c.patterns[p]
	pc.total++
	pc.lastMatch = now
	pc.recent.add(line, pc.total)
	key := joinKey(values)
	s := pc.series[key]
	if s == nil {
		if len(pc.series) >= pc.maxValues {
			// Over the cap: one shared series keeps the metric bounded.
			values = make([]string, len(values))
			for i := range values {
				values[i] = otherValue
			}
			key = joinKey(values)
			s = pc.series[key]
		}
		if s == nil {
			s = &series{labels: values}
			pc.series[key] = s
		}
	}
	s.n++
}

// labelValue makes a captured group safe as a label value.
func labelValue(b []byte) string {
	if len(b) > maxLabelValueBytes {
		b = b[:maxLabelValueBytes]
	}
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// counts is the counters at one moment: what a checkpoint saves and, once
// saved, what is exported. The JSON names are the state file's.
type counts struct {
	Lines       uint64         `json:"lines"`
	Bytes       uint64         `json:"bytes"`
	Rotations   uint64         `json:"rotations"`
	Truncations uint64         `json:"truncations"`
	LongLines   uint64         `json:"long_lines"`
	Patterns    []patternState `json:"patterns"`
}

type patternState struct {
	Name      string        `json:"name"`
	Labels    []string      `json:"labels,omitempty"`
	Total     uint64        `json:"total"`
	LastMatch float64       `json:"last_match,omitempty"`
	Series    []seriesState `json:"series"`
}

type seriesState struct {
	Values []string `json:"values,omitempty"`
	Count  uint64   `json:"count"`
}

// counts copies the counters.
func (c *counters) counts() counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := counts{Lines: c.lines, Bytes: c.bytes, Rotations: c.rotations, Truncations: c.truncations, LongLines: c.longLines}
	for _, pc := range c.patterns {
		ps := patternState{Name: pc.name, Labels: pc.labelNames, Total: pc.total, LastMatch: pc.lastMatch}
		for _, s := range pc.series {
			ps.Series = append(ps.Series, seriesState{Values: s.labels, Count: s.n})
		}
		k.Patterns = append(k.Patterns, ps)
	}
	return k
}

// load sets the counters from saved counts: the patterns that still exist
// (same name and labels) continue, the others start from zero.
func (c *counters) load(k counts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines, c.bytes, c.rotations, c.truncations, c.longLines = k.Lines, k.Bytes, k.Rotations, k.Truncations, k.LongLines
	for _, ps := range k.Patterns {
		for i := range c.patterns {
			pc := &c.patterns[i]
			if pc.name != ps.Name || !equalStrings(pc.labelNames, ps.Labels) {
				continue
			}
			pc.total, pc.lastMatch = ps.Total, ps.LastMatch
			pc.recent.reset()
			pc.series = map[string]*series{}
			for _, s := range ps.Series {
				pc.series[joinKey(s.Values)] = &series{labels: s.Values, n: s.Count}
			}
		}
	}
}

// values returns the live counters as exported series.
func (c *counters) values(files int) []probes.Value {
	k := c.counts()
	return k.values(files)
}

// values returns the exported series (the agent adds check and type).
func (k *counts) values(files int) []probes.Value {
	out := []probes.Value{
		{Name: "vigil_log_lines_total", Value: float64(k.Lines), Counter: true},
		{Name: "vigil_log_bytes_read_total", Value: float64(k.Bytes), Counter: true},
		{Name: "vigil_log_rotations_total", Value: float64(k.Rotations), Counter: true},
		{Name: "vigil_log_truncations_total", Value: float64(k.Truncations), Counter: true},
		{Name: "vigil_log_long_lines_total", Value: float64(k.LongLines), Counter: true},
		{Name: "vigil_log_files", Value: float64(files)},
	}
	for _, ps := range k.Patterns {
		for _, s := range ps.Series {
			labels := []probes.Label{{Name: "pattern", Value: ps.Name}}
			for i, n := range ps.Labels {
				labels = append(labels, probes.Label{Name: n, Value: s.Values[i]})
			}
			out = append(out, probes.Value{Name: "vigil_log_matches_total", Labels: labels, Value: float64(s.Count), Counter: true})
		}
		if ps.LastMatch > 0 {
			out = append(out, probes.Value{Name: "vigil_log_last_match_timestamp_seconds",
				Labels: []probes.Label{{Name: "pattern", Value: ps.Name}}, Value: ps.LastMatch})
		}
	}
	return out
}

// reports are the patterns at an evaluation that saw the totals upto,
// whose previous one saw prev: matches between, and the lines matched
// between (redacted).
func (c *counters) reports(prev, upto []uint64) []PatternReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]PatternReport, len(c.patterns))
	for i, pc := range c.patterns {
		var before uint64
		if i < len(prev) {
			before = prev[i]
		}
		total := pc.total
		if i < len(upto) {
			total = upto[i]
		}
		r := PatternReport{Pattern: pc.name, Total: total}
		if total > before {
			r.Matches = total - before
		}
		if pc.lastMatch > 0 {
			r.LastMatch = time.Unix(0, int64(pc.lastMatch*1e9)).UTC()
		}
		for _, l := range pc.recent.between(before, total) {
			r.Lines = append(r.Lines, redactLine(l))
		}
		out[i] = r
	}
	return out
}

// totals returns the per-pattern totals and the line count.
func (c *counters) totals() ([]uint64, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]uint64, len(c.patterns))
	for i, pc := range c.patterns {
		out[i] = pc.total
	}
	return out, c.lines
}

func joinKey(values []string) string { return strings.Join(values, "\xff") }
