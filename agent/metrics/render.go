package metrics

import (
	"io"
	"math"
	"sort"
	"strconv"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/probes"
)

// coreFamily is a series every check has, rendered from its state.
type coreFamily struct {
	name, typ, help string
	// each calls add for each of the check's series in this family: the
	// family labels beyond the check's, and the value.
	each func(e *Exporter, cs *checkSeries, add func(extra []probes.Label, v float64))
}

var (
	uptimeWindows = [3][]probes.Label{{{Name: "window", Value: "24h"}}, {{Name: "window", Value: "7d"}}, {{Name: "window", Value: "30d"}}}
	resultSuccess = []probes.Label{{Name: "result", Value: "success"}}
	resultFailure = []probes.Label{{Name: "result", Value: "failure"}}
)

// coreFamilies are sorted by name, as /metrics lists families.
var coreFamilies = []coreFamily{
	{"vigil_check_consecutive_failures", "gauge", "Failed runs in a row of the check (0 after a success).",
		func(e *Exporter, cs *checkSeries, add func([]probes.Label, float64)) {
			add(nil, float64(cs.consecutive))
		}},
	{"vigil_check_duration_seconds", "gauge", "Duration of the check's last run.",
		func(e *Exporter, cs *checkSeries, add func([]probes.Label, float64)) {
			add(nil, cs.last.Duration.Seconds())
		}},
	{"vigil_check_failure_info", "gauge", "1 for the reason the check fails (once failure_threshold runs in a row failed); absent while it passes.",
		func(e *Exporter, cs *checkSeries, add func([]probes.Label, float64)) {
			if cs.failing && !cs.last.Success {
				add(oneLabel("reason", string(cs.last.Reason)), 1)
			}
		}},
	{"vigil_check_interval_seconds", "gauge", "The check's configured interval (a check not run for twice this is stale).",
		func(e *Exporter, cs *checkSeries, add func([]probes.Label, float64)) {
			if cs.check.Interval > 0 {
				add(nil, cs.check.Interval.Seconds())
			}
		}},
	{"vigil_check_last_run_timestamp_seconds", "gauge", "Unix time the check's last run started.",
		func(e *Exporter, cs *checkSeries, add func([]probes.Label, float64)) {
			add(nil, float64(cs.last.Start.UnixNano())/1e9)
		}},
	{"vigil_check_phase_duration_seconds", "gauge", "Duration of each phase of the check's last run (dns, connect, tls, processing, transfer and the like).",
		func(e *Exporter, cs *checkSeries, add func([]probes.Label, float64)) {
			for i := range cs.last.NumPhases() {
				p := cs.last.Phase(i)
				add(oneLabel("phase", p.Name), p.Duration.Seconds())
			}
		}},
	{"vigil_check_runs_total", "counter", "Runs of the check since the agent started, by result (success or failure).",
		func(e *Exporter, cs *checkSeries, add func([]probes.Label, float64)) {
			// Both exist from the first run so rate() sees the first increment.
			add(resultFailure, float64(cs.runs[1]))
			add(resultSuccess, float64(cs.runs[0]))
		}},
	{"vigil_check_uptime_ratio", "gauge", "Share of the check's runs that passed over the window (24h, 7d, 30d; counted in whole hours, from the store, refreshed every minute for 24h and every 15 minutes for the others); absent for a window without runs.",
		func(e *Exporter, cs *checkSeries, add func([]probes.Label, float64)) {
			if e.uptime == nil {
				return
			}
			r, ok := e.uptime(cs.check.Name)
			for i := range r {
				if ok[i] {
					add(uptimeWindows[i], r[i])
				}
			}
		}},
	{"vigil_check_success", "gauge", "1 if the check passes, 0 once it has failed failure_threshold runs in a row.",
		func(e *Exporter, cs *checkSeries, add func([]probes.Label, float64)) {
			add(nil, boolFloat(!cs.failing))
		}},
}

// oneLabels holds the single-label sets of the phase and reason series,
// made once per name and value: both come from bounded sets (phase names
// and the reason vocabulary), and a scrape would otherwise make one per
// series.
var oneLabels sync.Map // [2]string -> []probes.Label

func oneLabel(name, value string) []probes.Label {
	k := [2]string{name, value}
	if l, ok := oneLabels.Load(k); ok {
		return l.([]probes.Label)
	}
	l, _ := oneLabels.LoadOrStore(k, []probes.Label{{Name: name, Value: value}})
	return l.([]probes.Label)
}

// family is one metric family of the per-check series: a core one, or the
// values of probes and collectors of that name.
type family struct {
	name, typ, help string
	core            *coreFamily
}

// valueSource is a check's values at one scrape: its last result's and
// its collector's.
type valueSource struct {
	cs        *checkSeries
	collected []probes.Value
}

func (v valueSource) each(name string, add func([]probes.Label, float64)) {
	if last := v.cs.last; last != nil {
		for i := range last.NumValues() {
			if x := last.Value(i); x.Name == name {
				add(x.Labels, x.Value)
			}
		}
	}
	for _, x := range v.collected {
		if x.Name == name {
			add(x.Labels, x.Value)
		}
	}
}

// families lists the per-check families that have series now, sorted by
// name, and each check's collected values (read once per scrape).
func (e *Exporter) families(order []*checkSeries) ([]family, []valueSource) {
	srcs := make([]valueSource, len(order))
	types := map[string]string{}
	ran := false
	e.mu.RLock()
	for i, cs := range order {
		srcs[i].cs = cs
		ran = ran || cs.last != nil
		if cs.col != nil {
			srcs[i].collected = cs.col.Collect()
		}
		if last := cs.last; last != nil {
			for j := range last.NumValues() {
				addType(types, last.Value(j))
			}
		}
		for _, v := range srcs[i].collected {
			addType(types, v)
		}
	}
	e.mu.RUnlock()
	fams := make([]family, 0, len(coreFamilies)+len(types))
	if ran {
		for i := range coreFamilies {
			c := &coreFamilies[i]
			fams = append(fams, family{name: c.name, typ: c.typ, help: c.help, core: c})
		}
	}
	for name, typ := range types {
		if _, isCore := coreIndex[name]; !isCore {
			help, _ := probes.MetricHelp(name)
			fams = append(fams, family{name: name, typ: typ, help: help})
		}
	}
	sort.Slice(fams, func(i, j int) bool { return fams[i].name < fams[j].name })
	return fams, srcs
}

// addType notes the family type of a value the first time its name comes.
func addType(types map[string]string, v probes.Value) {
	if _, ok := types[v.Name]; !ok {
		types[v.Name] = "gauge"
		if v.Counter {
			types[v.Name] = "counter"
		}
	}
}

var coreIndex = func() map[string]int {
	m := map[string]int{}
	for i, c := range coreFamilies {
		m[c.name] = i
	}
	return m
}()

// renderChunk is how many checks' lines are rendered under one read lock:
// a slow /metrics client never holds the lock, and results keep flowing.
const renderChunk = 256

// writeChecks writes the per-check series in the text format, family by
// family.
func (e *Exporter) writeChecks(w io.Writer) {
	order := e.snapshot()
	if len(order) == 0 {
		return
	}
	fams, srcs := e.families(order)
	tw := &textWriter{buf: make([]byte, 0, 64<<10)}
	add := tw.add
	for _, f := range fams {
		mark := len(tw.buf)
		tw.name, tw.any = f.name, false
		tw.buf = appendMetadata(tw.buf, f.name, f.typ, f.help)
		for lo := 0; lo < len(srcs); lo += renderChunk {
			hi := min(lo+renderChunk, len(srcs))
			e.mu.RLock()
			for _, src := range srcs[lo:hi] {
				tw.cs = src.cs
				if f.core != nil {
					if src.cs.last != nil {
						f.core.each(e, src.cs, add)
					}
				} else {
					src.each(f.name, add)
				}
			}
			e.mu.RUnlock()
			if tw.any && len(tw.buf) >= 48<<10 {
				w.Write(tw.buf)
				tw.buf, mark = tw.buf[:0], 0
			}
		}
		if !tw.any {
			tw.buf = tw.buf[:mark]
		}
	}
	w.Write(tw.buf)
}

// textWriter renders one family's series lines into buf. Its add is bound
// once per scrape: a closure per check and family was most of a scrape's
// garbage at thousands of checks.
type textWriter struct {
	buf  []byte
	name string
	cs   *checkSeries
	any  bool
}

func (t *textWriter) add(extra []probes.Label, v float64) {
	t.any = true
	t.buf = appendSeries(t.buf, t.name, t.cs, extra)
	t.buf = append(t.buf, ' ')
	t.buf = appendValue(t.buf, v)
	t.buf = append(t.buf, '\n')
}

// appendMetadata writes # HELP and # TYPE as VictoriaMetrics/metrics does
// for the agent-level series.
func appendMetadata(buf []byte, name, typ, help string) []byte {
	buf = append(buf, "# HELP "...)
	buf = append(buf, name...)
	if help != "" {
		buf = append(buf, ' ')
		buf = append(buf, help...)
	}
	buf = append(buf, "\n# TYPE "...)
	buf = append(buf, name...)
	buf = append(buf, ' ')
	buf = append(buf, typ...)
	return append(buf, '\n')
}

// appendSeries writes name{labels}: the check's labels rendered once, then
// the family's. A family label that repeats one of the check's wins (the
// slow path; config validation keeps the agent's own names reserved).
func appendSeries(buf []byte, name string, cs *checkSeries, extra []probes.Label) []byte {
	for _, l := range extra {
		if l.Name == "check" || l.Name == "type" || hasKey(cs.check.Labels, l.Name) {
			return append(buf, seriesName(name, baseLabels(cs.check), extra)...)
		}
	}
	buf = append(buf, name...)
	buf = append(buf, '{')
	buf = append(buf, cs.labels...)
	for _, l := range extra {
		buf = append(buf, ',')
		buf = appendLabel(buf, l)
	}
	return append(buf, '}')
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

func appendLabel(buf []byte, l probes.Label) []byte {
	buf = append(buf, l.Name...)
	buf = append(buf, '=', '"')
	for i := 0; i < len(l.Value); i++ {
		switch c := l.Value[i]; c {
		case '\\':
			buf = append(buf, '\\', '\\')
		case '"':
			buf = append(buf, '\\', '"')
		case '\n':
			buf = append(buf, '\\', 'n')
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '"')
}

// renderLabels renders label pairs for the inside of {}.
func renderLabels(ls []probes.Label) string {
	var buf []byte
	for i, l := range ls {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendLabel(buf, l)
	}
	return string(buf)
}

func appendValue(buf []byte, v float64) []byte {
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return strconv.AppendInt(buf, int64(v), 10)
	}
	return strconv.AppendFloat(buf, v, 'g', -1, 64)
}

// Samples visits the current value of every per-check series whose metric
// name want accepts, with its labels, in-process: the rule engine reads
// them without rendering and parsing text. lset is valid during the call
// only. The agent-level series are in WriteAgent. It never fails; the
// error is there to make it a rules.Source.
func (e *Exporter) Samples(want func(name string) bool, emit func(lset labels.Labels, v float64)) error {
	order := e.snapshot()
	if len(order) == 0 {
		return nil
	}
	fams, srcs := e.families(order)
	var (
		b    labels.ScratchBuilder
		lset labels.Labels
	)
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, f := range fams {
		if !want(f.name) {
			continue
		}
		for _, src := range srcs {
			cs := src.cs
			add := func(extra []probes.Label, v float64) {
				b.Reset()
				b.Add(model.MetricNameLabel, f.name)
				// A family label that repeats one of the check's wins,
				// as in the text.
				if !hasLabel(extra, "check") {
					b.Add("check", cs.check.Name)
				}
				if !hasLabel(extra, "type") {
					b.Add("type", cs.check.Type)
				}
				for k, v := range cs.check.Labels {
					if !hasLabel(extra, k) {
						b.Add(k, v)
					}
				}
				for _, l := range extra {
					b.Add(l.Name, l.Value)
				}
				b.Sort()
				b.Overwrite(&lset)
				emit(lset, v)
			}
			if f.core != nil {
				if cs.last != nil {
					f.core.each(e, cs, add)
				}
			} else {
				src.each(f.name, add)
			}
		}
	}
	return nil
}
