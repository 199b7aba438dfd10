// Package metrics turns check results into the Prometheus series of
// DESIGN.md §5 on top of VictoriaMetrics/metrics. It owns series lifetimes:
// a filesystem that disappears, a reason that changes or a check removed by
// reload takes its series with it, so /metrics never shows stale values.
package metrics

import (
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	"github.com/vigil-project/vigil/agent/lastrun"
	"github.com/vigil-project/vigil/internal/promhelp"
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
//
// Per-check series are not kept as metric objects: each check keeps its
// counters and last result (whose slices it shares with the agent's state),
// and every scrape renders the series from that. At thousands of checks a
// metric object per series cost ~6 KB per check; this costs a few hundred
// bytes. Agent-level series (reloads, the outbox, the store) are few and
// live in a VictoriaMetrics set.
type Exporter struct {
	set *vm.Set
	// runtime holds the Go runtime and process collectors (client_golang's:
	// VictoriaMetrics/metrics writes them without HELP and types some
	// counters as gauges).
	runtime *prometheus.Registry

	helpMu sync.Mutex
	// help is the HELP text of the agent-level families, from Gauge and
	// Counter.
	help map[string]string

	mu     sync.RWMutex
	checks map[string]*checkSeries
	// order is checks sorted by name, rebuilt after a check comes or goes.
	order []*checkSeries
	// uptime reads a check's uptime per window (24h, 7d, 30d); nil: none
	// exported.
	uptime func(check string) (ratios [3]float64, ok [3]bool)
}

// SetUptime sets where vigil_check_uptime_ratio comes from; call it before
// the first scrape.
func (e *Exporter) SetUptime(f func(check string) (ratios [3]float64, ok [3]bool)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.uptime = f
}

// checkSeries is what one check's series are rendered from.
type checkSeries struct {
	check Check
	// labels are the check's labels rendered once: check="x",type="y",k="v".
	labels      string
	consecutive int
	// failing is the confirmed state (Check.FailureThreshold).
	failing bool
	runs    [2]uint64 // success, failure
	// last is the last result (nil before the first: a streaming check
	// may have only a collector). Its phases and values are exported until
	// the next one replaces them. The agent's state holds the same
	// pointer; results are never modified once made.
	last *lastrun.Result
	// col is a streaming check's collector, read at scrape time.
	col probes.Collector
}

// New returns an empty exporter.
func New() *Exporter {
	vm.ExposeMetadata(true)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Exporter{set: vm.NewSet(), runtime: reg, help: map[string]string{}, checks: map[string]*checkSeries{}}
}

// entry returns the check's series, creating them; e.mu is held.
func (e *Exporter) entry(c Check) (cs *checkSeries, created bool) {
	if cs = e.checks[c.Name]; cs != nil {
		return cs, false
	}
	cs = &checkSeries{check: c, labels: renderLabels(baseLabels(c))}
	e.checks[c.Name] = cs
	e.order = nil
	return cs, true
}

// SetCollector exports a check's live values (logscan counters) at every
// scrape, with the check's labels, until RemoveCollector.
func (e *Exporter) SetCollector(c Check, col probes.Collector) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cs, _ := e.entry(c)
	cs.col = col
}

// RemoveCollector stops exporting a check's live values.
func (e *Exporter) RemoveCollector(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cs := e.checks[name]
	if cs == nil {
		return
	}
	cs.col = nil
	if cs.last == nil {
		e.remove(name)
	}
}

// Observe records one result, which must not be modified afterwards. It
// reports whether the check's confirmed state (vigil_check_success)
// changed, the first result included: the moment rules are worth
// evaluating again.
func (e *Exporter) Observe(c Check, r *lastrun.Result) (changed bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cs, _ := e.entry(c)
	if cs.last == nil {
		changed = true
	}
	cs.check.Interval, cs.check.FailureThreshold = c.Interval, c.FailureThreshold
	if r.Success {
		cs.consecutive = 0
		cs.runs[0]++
	} else {
		cs.consecutive++
		cs.runs[1]++
	}
	// A failure counts once it has happened FailureThreshold times in a
	// row; before, the last confirmed state stays (a new check starts
	// passing): a blip that a recheck clears never reaches the rules.
	confirmed := r.Success || cs.consecutive >= max(c.FailureThreshold, 1)
	if confirmed && cs.failing == r.Success {
		cs.failing, changed = !r.Success, true
	}
	cs.last = r
	return changed
}

// Forget removes every series of a check (it was removed from the config).
func (e *Exporter) Forget(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.remove(name)
}

func (e *Exporter) remove(name string) {
	if _, ok := e.checks[name]; ok {
		delete(e.checks, name)
		e.order = nil
	}
}

// Checks lists the checks that have series, sorted.
func (e *Exporter) Checks() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.checks))
	for _, cs := range e.sorted() {
		out = append(out, cs.check.Name)
	}
	return out
}

// snapshot is the checks sorted by name. The slice is never modified (a
// change of checks builds a new one); the checks' fields are read under
// e.mu.
func (e *Exporter) snapshot() []*checkSeries {
	e.mu.RLock()
	o := e.order
	e.mu.RUnlock()
	if o != nil {
		return o
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sorted()
}

// sorted is the checks by name; e.mu is held for writing.
func (e *Exporter) sorted() []*checkSeries {
	if e.order == nil {
		e.order = make([]*checkSeries, 0, len(e.checks))
		for _, cs := range e.checks {
			e.order = append(e.order, cs)
		}
		sort.Slice(e.order, func(i, j int) bool { return e.order[i].check.Name < e.order[j].check.Name })
	}
	return e.order
}

// WritePrometheus writes the agent's series followed by Go runtime and
// process metrics in the Prometheus text format.
func (e *Exporter) WritePrometheus(w io.Writer) {
	e.writeChecks(w)
	e.WriteAgent(w)
}

// WriteAgent writes everything but the per-check series: the agent-level
// series (reloads, paging, the store, runbooks) and the Go runtime and
// process metrics. They are few; Samples has the per-check ones.
func (e *Exporter) WriteAgent(w io.Writer) {
	e.helpMu.Lock()
	help := maps.Clone(e.help)
	e.helpMu.Unlock()
	promhelp.Write(w, e.set, help)
	e.writeRuntime(w)
}

// writeRuntime writes the go_* and process_* families.
func (e *Exporter) writeRuntime(w io.Writer) {
	mfs, err := e.runtime.Gather()
	if err != nil {
		// A collector that failed (no /proc) still has what it gathered.
		fmt.Fprintf(w, "# runtime metrics incomplete: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		enc.Encode(mf)
	}
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

// Gauge sets an agent-level gauge such as vigil_config_last_reload_successful;
// help is its HELP text.
func (e *Exporter) Gauge(name, help string, v float64, labels ...probes.Label) {
	e.describe(name, help)
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
// its first increment; help is its HELP text.
func (e *Exporter) Counter(name, help string, labels ...probes.Label) {
	e.describe(name, help)
	series := name
	if len(labels) > 0 {
		series = seriesName(name, nil, labels)
	}
	e.set.GetOrCreateCounter(series)
}

func (e *Exporter) describe(name, help string) {
	e.helpMu.Lock()
	defer e.helpMu.Unlock()
	e.help[name] = help
}

// AddWriter adds series written by another component (the outbox) to every
// scrape.
func (e *Exporter) AddWriter(w func(io.Writer)) { e.set.RegisterMetricsWriter(w) }
