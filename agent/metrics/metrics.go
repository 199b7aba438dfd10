// Package metrics turns check results into the Prometheus series of
// DESIGN.md §5 on top of VictoriaMetrics/metrics. It owns series lifetimes:
// a filesystem that disappears, a reason that changes or a check removed by
// reload takes its series with it, so /metrics never shows stale values.
package metrics

import (
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/vigil-project/vigil/probes"
)

// Check identifies the check a result belongs to.
type Check struct {
	Name, Type string
	// Labels are the check's configured labels, added to all its series.
	Labels map[string]string
	// Interval is the check's configured interval (for dead-man's-switch
	// rules: a check that has not run for twice its interval).
	Interval time.Duration
	// FailureThreshold is how many failures in a row it takes for
	// vigil_check_success to say 0 (and vigil_check_failure_info to name
	// the reason); until then the last confirmed state stays. 0 or 1: the
	// first failure.
	FailureThreshold int
}

// Exporter holds the agent's series.
type Exporter struct {
	set *vm.Set

	mu     sync.Mutex
	checks map[string]*checkState

	cmu        sync.Mutex
	collectors map[string]collected
}

// collected is a streaming check whose values are read at scrape time.
type collected struct {
	check Check
	col   probes.Collector
}

type checkState struct {
	consecutive int
	// failing is the confirmed state (Check.FailureThreshold).
	failing bool
	// dynamic holds series whose presence depends on the last result
	// (family values, failure_info, phases); removed when absent next time.
	dynamic map[string]bool
	// static holds the core series, removed only by Forget.
	static map[string]bool
}

// New returns an empty exporter.
func New() *Exporter {
	vm.ExposeMetadata(true)
	e := &Exporter{set: vm.NewSet(), checks: map[string]*checkState{}, collectors: map[string]collected{}}
	e.set.RegisterMetricsWriter(e.writeCollected)
	return e
}

// SetCollector exports a check's live values (logscan counters) at every
// scrape, with the check's labels, until RemoveCollector.
func (e *Exporter) SetCollector(c Check, col probes.Collector) {
	e.cmu.Lock()
	e.collectors[c.Name] = collected{check: c, col: col}
	e.cmu.Unlock()
}

// RemoveCollector stops exporting a check's live values.
func (e *Exporter) RemoveCollector(name string) {
	e.cmu.Lock()
	delete(e.collectors, name)
	e.cmu.Unlock()
}

type sample struct {
	name, series string
	value        float64
	counter      bool
}

// writeCollected writes the collectors' values, grouped by metric name as
// the text format requires, without timestamps.
func (e *Exporter) writeCollected(w io.Writer) {
	e.cmu.Lock()
	cs := make([]collected, 0, len(e.collectors))
	for _, c := range e.collectors {
		cs = append(cs, c)
	}
	e.cmu.Unlock()
	if len(cs) == 0 {
		return
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].check.Name < cs[j].check.Name })
	var samples []sample
	for _, c := range cs {
		base := baseLabels(c.check)
		for _, v := range c.col.Collect() {
			samples = append(samples, sample{name: v.Name, series: seriesName(v.Name, base, v.Labels), value: v.Value, counter: v.Counter})
		}
	}
	sort.SliceStable(samples, func(i, j int) bool { return samples[i].name < samples[j].name })
	buf := make([]byte, 0, 64<<10)
	for i, s := range samples {
		if i == 0 || samples[i-1].name != s.name {
			typ := "gauge"
			if s.counter {
				typ = "counter"
			}
			w.Write(buf)
			buf = buf[:0]
			vm.WriteMetadataIfNeeded(w, s.name, typ)
		}
		buf = append(buf, s.series...)
		buf = append(buf, ' ')
		if s.value == math.Trunc(s.value) && math.Abs(s.value) < 1<<53 {
			buf = strconv.AppendInt(buf, int64(s.value), 10)
		} else {
			buf = strconv.AppendFloat(buf, s.value, 'g', -1, 64)
		}
		buf = append(buf, '\n')
	}
	w.Write(buf)
}

// Observe records one result. It reports whether the check's confirmed
// state (vigil_check_success) changed, the first result included: the
// moment rules are worth evaluating again.
func (e *Exporter) Observe(c Check, r probes.Result) (changed bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.checks[c.Name]
	if st == nil {
		st = &checkState{dynamic: map[string]bool{}, static: map[string]bool{}}
		e.checks[c.Name] = st
		changed = true
	}
	base := baseLabels(c)

	gauge := func(set map[string]bool, name string, v float64, extra ...probes.Label) string {
		series := seriesName(name, base, extra)
		e.set.GetOrCreateGauge(series, nil).Set(v)
		set[series] = true
		return series
	}
	result := "success"
	if r.Success {
		st.consecutive = 0
	} else {
		st.consecutive++
		result = "failure"
	}
	// A failure counts once it has happened FailureThreshold times in a
	// row; before, the last confirmed state stays (a new check starts
	// passing): a blip that a recheck clears never reaches the rules.
	confirmed := r.Success || st.consecutive >= max(c.FailureThreshold, 1)
	if confirmed && st.failing == r.Success {
		st.failing, changed = !r.Success, true
	}
	gauge(st.static, "vigil_check_success", boolFloat(!st.failing))
	gauge(st.static, "vigil_check_duration_seconds", r.Duration.Seconds())
	gauge(st.static, "vigil_check_last_run_timestamp_seconds", float64(r.Start.UnixNano())/float64(time.Second))
	gauge(st.static, "vigil_check_consecutive_failures", float64(st.consecutive))
	if c.Interval > 0 {
		gauge(st.static, "vigil_check_interval_seconds", c.Interval.Seconds())
	}
	// Both result series exist from the first run so rate() sees the first increment.
	for _, res := range []string{"success", "failure"} {
		series := seriesName("vigil_check_runs_total", base, []probes.Label{{Name: "result", Value: res}})
		cnt := e.set.GetOrCreateCounter(series)
		st.static[series] = true
		if res == result {
			cnt.Inc()
		}
	}

	now := map[string]bool{}
	if !r.Success && confirmed {
		gauge(now, "vigil_check_failure_info", 1, probes.Label{Name: "reason", Value: string(r.Reason)})
	}
	for _, p := range r.Phases {
		gauge(now, "vigil_check_phase_duration_seconds", p.Duration.Seconds(), probes.Label{Name: "phase", Value: p.Name})
	}
	for _, v := range r.Values {
		gauge(now, v.Name, v.Value, v.Labels...)
	}
	for series := range st.dynamic {
		if !now[series] {
			e.set.UnregisterMetric(series)
		}
	}
	st.dynamic = now
	return changed
}

// Forget removes every series of a check (it was removed from the config).
func (e *Exporter) Forget(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.checks[name]
	if st == nil {
		return
	}
	for _, m := range []map[string]bool{st.static, st.dynamic} {
		for series := range m {
			e.set.UnregisterMetric(series)
		}
	}
	delete(e.checks, name)
}

// Checks lists the checks that have series, sorted.
func (e *Exporter) Checks() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.checks))
	for n := range e.checks {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// WritePrometheus writes the agent's series followed by Go runtime and
// process metrics in the Prometheus text format.
func (e *Exporter) WritePrometheus(w io.Writer) {
	e.set.WritePrometheus(w)
	vm.WriteProcessMetrics(w)
}

func baseLabels(c Check) []probes.Label {
	labels := []probes.Label{{Name: "check", Value: c.Name}, {Name: "type", Value: c.Type}}
	keys := make([]string, 0, len(c.Labels))
	for k := range c.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		labels = append(labels, probes.Label{Name: k, Value: c.Labels[k]})
	}
	return labels
}

// seriesName renders name{labels}. A family label that repeats a base label
// name wins over the configured one (config validation keeps the agent's own
// names reserved, so this only resolves user labels colliding with family ones).
func seriesName(name string, base, extra []probes.Label) string {
	var b strings.Builder
	b.Grow(len(name) + 64)
	b.WriteString(name)
	b.WriteByte('{')
	first := true
	write := func(l probes.Label) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(l.Name)
		b.WriteString(`="`)
		writeEscaped(&b, l.Value)
		b.WriteByte('"')
	}
	for _, l := range base {
		if !hasLabel(extra, l.Name) {
			write(l)
		}
	}
	for _, l := range extra {
		write(l)
	}
	b.WriteByte('}')
	return b.String()
}

func hasLabel(ls []probes.Label, name string) bool {
	for _, l := range ls {
		if l.Name == name {
			return true
		}
	}
	return false
}

// writeEscaped escapes a label value as the Prometheus text format requires.
func writeEscaped(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Gauge sets an agent-level gauge such as vigil_config_last_reload_successful.
func (e *Exporter) Gauge(name string, v float64, labels ...probes.Label) {
	series := name
	if len(labels) > 0 {
		series = seriesName(name, nil, labels)
	}
	e.set.GetOrCreateGauge(series, nil).Set(v)
}

// Inc adds one to an agent-level counter such as
// vigil_notify_drill_dropped_total.
func (e *Exporter) Inc(name string, labels ...probes.Label) {
	series := name
	if len(labels) > 0 {
		series = seriesName(name, nil, labels)
	}
	e.set.GetOrCreateCounter(series).Inc()
}

// Counter creates an agent-level counter at zero so it is exported before
// its first increment.
func (e *Exporter) Counter(name string, labels ...probes.Label) {
	series := name
	if len(labels) > 0 {
		series = seriesName(name, nil, labels)
	}
	e.set.GetOrCreateCounter(series)
}

// AddWriter adds series written by another component (the outbox) to every
// scrape.
func (e *Exporter) AddWriter(w func(io.Writer)) { e.set.RegisterMetricsWriter(w) }
