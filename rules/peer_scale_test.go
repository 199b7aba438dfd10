//go:build peerbench

package rules

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"

	"github.com/vigil-project/vigil/internal/testenv"
)

// The scale benchmark's shape: checks run every minute, their series are
// sampled every 15 s (how Prometheus scrapes an agent), an hour of history
// before the timed rounds, rules evaluated every minute. (Evaluating every
// 15 s, Prometheus' groups overlap on two cores: each group's duration
// then includes waiting for the others, and the sum over groups is no
// longer one round's work.)
const (
	scaleStep    = 15 * time.Second
	scaleHistory = 240 // steps: 1 h
	scaleEvery   = 4   // steps between rounds: the evaluation interval
	scaleWarm    = 2   // rounds before the timed ones
	scaleRounds  = 7   // timed rounds (the median is reported)
	// runEvery is the check interval in steps.
	runEvery = 4
)

// scaleTypes are the check types of the fleet, their share (in %), a
// typical duration and the phases the check reports with their share of
// it.
var scaleTypes = []struct {
	name   string
	share  int
	base   float64
	phases []string
	frac   []float64
}{
	{"http", 60, 0.12, []string{"dns", "connect", "tls", "processing", "transfer"}, []float64{.05, .1, .25, .5, .1}},
	{"tcp", 15, 0.01, []string{"dns", "connect"}, []float64{.2, .8}},
	{"tls", 10, 0.05, []string{"dns", "connect", "tls"}, []float64{.1, .3, .6}},
	{"dns", 10, 0.005, []string{"resolve"}, []float64{1}},
	{"icmp", 5, 0.02, []string{"rtt"}, []float64{1}},
}

var (
	scaleSites   = []string{"ams1", "fra1", "iad1", "sin1", "gru1"}
	scaleReasons = []string{"timeout", "connection_refused", "status_code", "certificate_expired", "dns_nxdomain"}
)

const scaleTeams = 50

// scaleCheck is one check and the state of its last run.
type scaleCheck struct {
	name, team, site string
	typ              int // index in scaleTypes
	mult             float64
	failing          bool
	reason           string
	dur              float64
	runs             [2]float64 // success, failure
}

// fleet produces the series the agent's exporter has for n checks at each
// step, deterministically: two fleets of the same size advanced the same
// number of steps have the same series and values. Values change when a
// check runs (every runEvery steps, staggered), as the exporter's do.
type fleet struct {
	checks []scaleCheck
	step   int
	b      labels.ScratchBuilder
	lset   labels.Labels
}

func newFleet(n int) *fleet {
	f := &fleet{checks: make([]scaleCheck, n), step: -1}
	for i := range f.checks {
		c := &f.checks[i]
		c.name = fmt.Sprintf("chk-%05d", i)
		c.team = fmt.Sprintf("t%02d", i%scaleTeams)
		c.site = scaleSites[(i/scaleTeams)%len(scaleSites)]
		share := int(mix(uint64(i), 0, 7) % 100)
		for c.typ = 0; share >= scaleTypes[c.typ].share; c.typ++ {
			share -= scaleTypes[c.typ].share
		}
		c.mult = 0.5 + 2.5*unit(mix(uint64(i), 0, 5))
		if mix(uint64(i), 0, 6)%50 == 0 {
			c.mult *= 20 // a slow endpoint
		}
	}
	return f
}

// mix is splitmix64 over three inputs.
func mix(a, b, c uint64) uint64 {
	z := a*0x9e3779b97f4a7c15 ^ b*0xbf58476d1ce4e5b9 ^ c*0x94d049bb133111eb
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// advance moves to the next step: the checks due run.
func (f *fleet) advance() {
	f.step++
	k := f.step
	for i := range f.checks {
		if k > 0 && (k+i)%runEvery != 0 {
			continue
		}
		c := &f.checks[i]
		// 10-minute episodes: 2% of checks fail in each; 1% of checks are
		// flaky; all http checks of one site fail for 7.5 minutes.
		epoch := uint64((k + i%40) / 40)
		fail := mix(uint64(i), epoch, 1)%1000 < 20
		if i%100 == 37 {
			fail = mix(uint64(i), uint64(k), 2)%10 < 3
		}
		if c.site == "sin1" && c.typ == 0 && k >= 150 && k < 180 {
			fail = true
		}
		c.failing = fail
		if fail {
			c.runs[1]++
			c.reason = scaleReasons[mix(uint64(i), epoch, 3)%uint64(len(scaleReasons))]
			c.dur = 0.002
			if c.reason == "timeout" {
				c.dur = 10
			}
		} else {
			c.runs[0]++
			c.dur = scaleTypes[c.typ].base * c.mult * (0.7 + 0.6*unit(mix(uint64(i), uint64(k), 4)))
		}
	}
}

// source is the fleet's current series as a Source, family by family in
// name order like the exporter's.
func (f *fleet) source(want func(string) bool, emit func(labels.Labels, float64)) error {
	f.each(want, emit)
	return nil
}

func (f *fleet) each(want func(string) bool, emit func(labels.Labels, float64)) {
	series := func(name string, c *scaleCheck, extraName, extraValue string, v float64) {
		f.b.Reset()
		f.b.Add(model.MetricNameLabel, name)
		f.b.Add("check", c.name)
		f.b.Add("site", c.site)
		f.b.Add("team", c.team)
		f.b.Add("type", scaleTypes[c.typ].name)
		if extraName != "" {
			f.b.Add(extraName, extraValue)
		}
		f.b.Sort()
		f.b.Overwrite(&f.lset)
		emit(f.lset, v)
	}
	for _, name := range []string{"vigil_check_duration_seconds", "vigil_check_failure_info", "vigil_check_phase_duration_seconds",
		"vigil_check_runs_total", "vigil_check_success"} {
		if !want(name) {
			continue
		}
		for i := range f.checks {
			c := &f.checks[i]
			switch name {
			case "vigil_check_duration_seconds":
				series(name, c, "", "", c.dur)
			case "vigil_check_failure_info":
				if c.failing {
					series(name, c, "reason", c.reason, 1)
				}
			case "vigil_check_phase_duration_seconds":
				t := scaleTypes[c.typ]
				for j, p := range t.phases {
					series(name, c, "phase", p, c.dur*t.frac[j])
				}
			case "vigil_check_runs_total":
				series(name, c, "result", "failure", c.runs[1])
				series(name, c, "result", "success", c.runs[0])
			case "vigil_check_success":
				series(name, c, "", "", boolToFloat(!c.failing))
			}
		}
	}
}

// writeText writes the fleet's current series in the text format, as the
// agent's /metrics has them.
func (f *fleet) writeText(w io.Writer) {
	bw := bufio.NewWriterSize(w, 64<<10)
	f.each(func(string) bool { return true }, func(lset labels.Labels, v float64) {
		sep := "{"
		lset.Range(func(l labels.Label) {
			if l.Name == model.MetricNameLabel {
				bw.WriteString(l.Value)
				return
			}
			bw.WriteString(sep)
			bw.WriteString(l.Name)
			bw.WriteString(`="`)
			bw.WriteString(l.Value) // the fleet's values need no escaping
			bw.WriteString(`"`)
			sep = ","
		})
		bw.WriteString("} ")
		bw.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		bw.WriteByte('\n')
	})
	bw.Flush()
}

func boolToFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// writeScaleRules writes 1,000 rules: per team (40 of the 50 teams) a
// group of 20 alerting and recording rules selecting the team's checks,
// and four fleet groups of 50 (per site and type, fleet-wide, and alerts
// on single critical checks).
func writeScaleRules(path string, nchecks int) (int, error) {
	var b strings.Builder
	n := 0
	rule := func(kind, name, expr, extra string) {
		n++
		fmt.Fprintf(&b, "      - %s: %s\n        expr: '%s'\n%s", kind, name, expr, extra)
	}
	alert := func(name, expr, forDur, severity, summary string) {
		extra := ""
		if forDur != "" {
			extra += "        for: " + forDur + "\n"
		}
		extra += fmt.Sprintf("        labels: {severity: %s}\n        annotations: {summary: \"%s\"}\n", severity, summary)
		rule("alert", name, expr, extra)
	}
	record := func(name, expr string) { rule("record", name, expr, "") }
	check := func(i int) string { return fmt.Sprintf("chk-%05d", i%nchecks) }

	b.WriteString("groups:\n")
	for t := 0; t < 40; t++ {
		team := fmt.Sprintf(`team="t%02d"`, t)
		fmt.Fprintf(&b, "  - name: team-t%02d\n    rules:\n", t)
		alert("CheckDown", `vigil_check_success{`+team+`} == 0`, "2m", "page", "{{ $labels.check }} ({{ $labels.type }}) fails")
		alert("CheckFlapping", `changes(vigil_check_success{`+team+`}[15m]) > 4`, "", "ticket", "{{ $labels.check }} changed {{ $value }} times in 15m")
		alert("CheckAvailabilityLow", `avg_over_time(vigil_check_success{`+team+`}[1h]) < 0.9`, "5m", "ticket", "{{ $labels.check }} up {{ $value | humanizePercentage }} over 1h")
		record("team_type:vigil_check_success:avg", `avg by (team, type) (vigil_check_success{`+team+`})`)
		record("team_result:vigil_check_runs:rate5m", `sum by (team, result) (rate(vigil_check_runs_total{`+team+`}[5m]))`)
		record("team:vigil_check_failure:ratio_rate5m", `sum by (team) (rate(vigil_check_runs_total{`+team+`,result="failure"}[5m])) / sum by (team) (rate(vigil_check_runs_total{`+team+`}[5m]))`)
		alert("TeamFailureRatioHigh", `team:vigil_check_failure:ratio_rate5m{`+team+`} > 0.05`, "5m", "page", "{{ $value | humanizePercentage }} of runs fail")
		alert("CheckSlow", `avg_over_time(vigil_check_duration_seconds{`+team+`}[10m]) > 2`, "5m", "ticket", "{{ $labels.check }} takes {{ $value }}s")
		record("team_site:vigil_check_duration_seconds:p95_10m", `max by (team, site) (quantile_over_time(0.95, vigil_check_duration_seconds{`+team+`,type="http"}[10m]))`)
		record("team:vigil_check_duration_seconds:top3", `topk(3, vigil_check_duration_seconds{`+team+`})`)
		alert("TLSHandshakeSlow", `vigil_check_phase_duration_seconds{`+team+`,phase="tls"} > 1`, "", "ticket", "{{ $labels.check }} TLS {{ $value }}s")
		alert("DNSSlow", `vigil_check_phase_duration_seconds{`+team+`,phase="dns"} > 0.5`, "1m", "ticket", "{{ $labels.check }} DNS {{ $value }}s")
		alert("FailureReasonSpread", `count by (team, reason) (vigil_check_failure_info{`+team+`}) > 2`, "", "ticket", "{{ $value }} checks fail with {{ $labels.reason }}")
		crit := check(t + 50*(t%7))
		alert("CriticalCheckAbsent", `absent(vigil_check_success{check="`+crit+`"})`, "5m", "page", crit+" reports nothing")
		alert("CriticalCheckDown", `vigil_check_success{check="`+crit+`"} == 0`, "1m", "page", "{{ $labels.check }} is down")
		alert("CheckNotRunning", `sum by (check) (increase(vigil_check_runs_total{`+team+`}[10m])) == 0`, "5m", "ticket", "{{ $labels.check }} did not run")
		record("team_site:vigil_check_failing:count", `count by (team, site) (vigil_check_success{`+team+`} == 0)`)
		alert("TeamSiteOutage", `count by (team, site) (vigil_check_success{`+team+`} == 0) / count by (team, site) (vigil_check_success{`+team+`}) > 0.5`, "1m", "page", "{{ $labels.site }}: {{ $value | humanizePercentage }} fail")
		alert("DurationJump", `vigil_check_duration_seconds{`+team+`} > 3 * avg_over_time(vigil_check_duration_seconds{`+team+`}[1h])`, "2m", "ticket", "{{ $labels.check }} slower than its hour")
		record("team:vigil_check_up:ratio", `sum by (team) (vigil_check_success{`+team+`}) / count by (team) (vigil_check_success{`+team+`})`)
	}

	// Fleet group 0 and 1: per site and type.
	for g := 0; g < 2; g++ {
		fmt.Fprintf(&b, "  - name: site-type-%d\n    rules:\n", g)
		for s := g * 3; s < min(g*3+3, len(scaleSites)); s++ {
			site := scaleSites[s]
			for _, typ := range scaleTypes {
				sel := fmt.Sprintf(`site="%s",type="%s"`, site, typ.name)
				record("site_type:vigil_check_success:avg", `avg by (site, type) (vigil_check_success{`+sel+`})`)
				record("site_type_result:vigil_check_runs:rate5m", `sum by (site, type, result) (rate(vigil_check_runs_total{`+sel+`}[5m]))`)
				alert("SiteTypeDegraded", `avg by (site, type) (avg_over_time(vigil_check_success{`+sel+`}[15m])) < 0.97`, "5m", "ticket", "{{ $labels.type }} checks at {{ $labels.site }} degraded")
				record("site_type:vigil_check_duration_seconds:max", `max by (site, type) (vigil_check_duration_seconds{`+sel+`})`)
			}
			sel := fmt.Sprintf(`site="%s"`, site)
			record("site:vigil_check_duration_seconds:top10", `topk(10, vigil_check_duration_seconds{`+sel+`})`)
			record("site_reason:vigil_check_failure_info:sum", `sum by (site, reason) (vigil_check_failure_info{`+sel+`})`)
			record("site_phase:vigil_check_phase_duration_seconds:max", `max by (site, phase) (vigil_check_phase_duration_seconds{`+sel+`,type="http"})`)
			alert("SiteICMPAbsent", `absent(vigil_check_success{`+sel+`,type="icmp"})`, "5m", "page", "no icmp checks at "+site)
			alert("SiteOutage", `count by (site) (vigil_check_success{`+sel+`} == 0) > 20`, "1m", "page", "{{ $value }} checks fail at {{ $labels.site }}")
		}
	}
	// Fleet group 2: fleet-wide, unselective.
	b.WriteString("  - name: fleet\n    rules:\n")
	record("type:vigil_check_failing:count", `count by (type) (vigil_check_success == 0)`)
	record("result:vigil_check_runs:rate5m", `sum by (result) (rate(vigil_check_runs_total[5m]))`)
	record("reason:vigil_check_failure_info:sum", `sum by (reason) (vigil_check_failure_info)`)
	record("type:vigil_check_duration_seconds:p99", `quantile by (type) (0.99, vigil_check_duration_seconds)`)
	record("fleet:vigil_checks:count", `count(vigil_check_success)`)
	record("fleet:vigil_check_success:avg_1h", `avg(avg_over_time(vigil_check_success[1h]))`)
	alert("FleetDegraded", `avg(vigil_check_success) < 0.95`, "5m", "page", "{{ $value | humanizePercentage }} of checks pass")
	alert("ChecksNotRunning", `sum(rate(vigil_check_runs_total[5m])) < 100`, "5m", "page", "only {{ $value }} runs/s")
	record("fleet:vigil_check_success:bottom20_1h", `bottomk(20, avg_over_time(vigil_check_success[1h]))`)
	record("site_type:vigil_check_tls_slow:count", `count by (site, type) (vigil_check_phase_duration_seconds{phase="tls"} > 0.5)`)
	// Fleet group 3: single critical checks (some of them retired names
	// nothing reports any more, so their absent() fires).
	b.WriteString("  - name: critical\n    rules:\n")
	for i := 0; i < 50; i++ {
		alert("CriticalCheckDown", `vigil_check_success{check="`+check(i*197+11)+`"} == 0`, "1m", "page", "{{ $labels.check }} is down")
	}
	for i := 0; i < 15; i++ {
		name := check(i*389 + 5)
		if i%3 == 0 {
			name = fmt.Sprintf("chk-retired-%d", i)
		}
		alert("CriticalCheckAbsent", `absent(vigil_check_success{check="`+name+`"})`, "5m", "page", name+" reports nothing")
	}
	return n, os.WriteFile(path, []byte(b.String()), 0o644)
}

// scaleResult is one side's measurement.
type scaleResult struct {
	rounds []time.Duration // sum of the groups' evaluation times, per round
	notes  []string
	// check are the cross-check queries' results at the last round.
	check map[string]string
	// byRule is the last round's evaluation time by rule name (the same
	// name in several groups summed).
	byRule map[string]float64
}

// crossChecks are queried on both sides after the timed rounds: the same
// data and rules should give about the same answers (evaluation instants
// differ a little, so alerts near their `for` may differ).
var crossChecks = []string{
	`count by (alertstate) (ALERTS)`,
	`count({__name__=~".+:.+"})`,
	`count(vigil_check_success == 0)`,
}

// TestPeerRulesAtScale evaluates the same 1,000 rules over the series of
// the same 10,000 checks (an hour of them at 15 s) in vigil (rules.Manager
// over its store, fed by a Scraper with the rules' selection, in process)
// and in Debian's Prometheus (the series remote-written into its head,
// the rule file loaded once the history is in), and reports one round of
// evaluation (sum over the groups) on each side: median of the timed
// rounds.
//
// RULES_PEER_CHECKS changes the number of checks; RULES_PEER_PROM=off
// skips Prometheus; RULES_PEER_CPUPROFILE and RULES_PEER_PROM_CPUPROFILE
// write CPU profiles of vigil's timed rounds and of two of Prometheus'.
func TestPeerRulesAtScale(t *testing.T) {
	n := 10_000
	if s := os.Getenv("RULES_PEER_CHECKS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "scale.rules.yml")
	nrules, err := writeScaleRules(rulesPath, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d checks, %d rules, %d steps of %s history, rounds every %s: %d warm-up and %d timed",
		n, nrules, scaleHistory, scaleStep, scaleEvery*scaleStep, scaleWarm, scaleRounds)

	v := runVigilScale(t, dir, n)
	vm := median(v.rounds)
	t.Logf("vigil: one round: median %s, rounds %v", vm.Round(time.Millisecond), roundAll(v.rounds))
	for _, s := range v.notes {
		t.Log("vigil: " + s)
	}
	if os.Getenv("RULES_PEER_PROM") == "off" {
		return
	}
	prom := testenv.NeedBinary(t, "prometheus", "prometheus")
	runtime.GC()
	p := runPrometheusScale(t, prom, dir, rulesPath, n)
	pm := median(p.rounds)
	t.Logf("prometheus: one round: median %s, rounds %v", pm.Round(time.Millisecond), roundAll(p.rounds))
	for _, s := range p.notes {
		t.Log("prometheus: " + s)
	}
	for _, q := range crossChecks {
		t.Logf("cross-check %s: vigil %s, prometheus %s", q, v.check[q], p.check[q])
	}
	names := make([]string, 0, len(p.byRule))
	for name := range p.byRule {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(p.byRule[b], p.byRule[a]) })
	for _, name := range names {
		t.Logf("last round by rule: %-50s vigil %7.1f ms, prometheus %7.1f ms", name, v.byRule[name]*1e3, p.byRule[name]*1e3)
	}
	t.Logf("vigil/prometheus: %.2f", vm.Seconds()/pm.Seconds())
	if b, err := os.ReadFile("/proc/pressure/cpu"); err == nil {
		// Prometheus' groups run at once: on a busy machine each waits
		// for the CPU, and the sum of their durations grows with it.
		t.Logf("machine CPU pressure at the end (/proc/pressure/cpu): %s", strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	}
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

func runVigilScale(t *testing.T, dir string, n int) scaleResult {
	groups, err := LoadFiles(dir, []string{"scale.rules.yml"}, scaleStep, nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)

	st := NewStore()
	f := newFleet(n)
	sc := NewScraper(st, f.source)
	sc.Select(SelectionOf(groups))
	base := time.Now().Truncate(scaleStep).Add(-scaleHistory * scaleStep)
	at := func(k int) time.Time { return base.Add(time.Duration(k) * scaleStep) }
	start := time.Now()
	samples := 0
	for k := 0; k < scaleHistory; k++ {
		f.advance()
		s, err := sc.Scrape(at(k))
		if err != nil {
			t.Fatal(err)
		}
		samples += s
	}
	loadTime := time.Since(start)

	m := NewManager(Options{Store: st, Engine: newTestEngine(), Notifier: discardNotifier{}})
	m.Update(groups)
	var res scaleResult
	var mallocs, allocBytes []uint64
	var cpu, scrapeCPU []time.Duration
	k := scaleHistory - 1
	profile := os.Getenv("RULES_PEER_CPUPROFILE")
	for r := 0; r < scaleWarm+scaleRounds; r++ {
		if r == scaleWarm && profile != "" {
			pf, err := os.Create(profile)
			if err != nil {
				t.Fatal(err)
			}
			if err := pprof.StartCPUProfile(pf); err != nil {
				t.Fatal(err)
			}
			defer pf.Close()
			res.notes = append(res.notes, "CPU profile of the timed rounds in "+profile)
		}
		cpu0 := cpuTime()
		for range scaleEvery {
			k++
			f.advance()
			if _, err := sc.Scrape(at(k)); err != nil {
				t.Fatal(err)
			}
		}
		scd := cpuTime() - cpu0
		d, c, ma, by := vigilRound(m, groups, at(k))
		if r >= scaleWarm {
			res.rounds, cpu, scrapeCPU = append(res.rounds, d), append(cpu, c), append(scrapeCPU, scd)
			mallocs, allocBytes = append(mallocs, ma), append(allocBytes, by)
		}
	}
	if profile != "" {
		pprof.StopCPUProfile()
	}
	last := at(k)

	for _, g := range groups {
		for _, r := range g.Rules {
			if err := ruleErr(r); err != nil {
				t.Fatalf("rule %s in %s: %v", ruleName(r), g.Name, err)
			}
		}
	}
	res.byRule = map[string]float64{}
	for _, g := range groups {
		for _, r := range g.Info().Rules {
			res.byRule[r.Name] += r.EvaluationTime
		}
	}
	res.check = map[string]string{}
	eng := newTestEngine()
	for _, q := range crossChecks {
		qry, err := eng.NewInstantQuery(context.Background(), st, nil, q, last)
		if err != nil {
			t.Fatal(err)
		}
		r := qry.Exec(context.Background())
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		vec, _ := r.Vector()
		res.check[q] = vectorString(vec)
		qry.Close()
	}

	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	series, stored, bytes := st.Stats()
	slices.Sort(mallocs)
	slices.Sort(allocBytes)
	res.notes = append(res.notes,
		fmt.Sprintf("history: %d samples scraped in %s (%d steps)", samples, loadTime.Round(time.Millisecond), scaleHistory),
		fmt.Sprintf("store: %d series (of the fleet's, the ones the rules select, and the rules' own), %d samples, %.2f bytes/sample",
			series, stored, float64(bytes)/float64(stored)),
		fmt.Sprintf("heap in use: %.1f MiB (store, rules and their state; test scaffolding excluded as far as it is before/after)",
			float64(int64(m1.HeapInuse)-int64(m0.HeapInuse))/(1<<20)),
		fmt.Sprintf("per round: CPU %s, %d allocations, %.1f MiB allocated; %d scrapes between rounds: CPU %s (the fleet's series generated included) (medians)",
			median(cpu).Round(time.Millisecond), mallocs[len(mallocs)/2], float64(allocBytes[len(allocBytes)/2])/(1<<20),
			scaleEvery, median(scrapeCPU).Round(time.Millisecond)))
	runtime.KeepAlive(st)
	runtime.KeepAlive(m)
	return res
}

// vigilRound evaluates every group at ts, one after the other as the
// manager's loop does; it returns the sum of the groups' evaluation times
// (like Prometheus' group durations, without ingestion), the process' CPU
// time meanwhile, and what the round allocated.
func vigilRound(m *Manager, groups []*Group, ts time.Time) (time.Duration, time.Duration, uint64, uint64) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	var sum time.Duration
	for _, g := range groups {
		start := time.Now()
		m.EvalGroup(context.Background(), g, ts)
		sum += time.Since(start)
	}
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&after)
	return sum, cpu, after.Mallocs - before.Mallocs, after.TotalAlloc - before.TotalAlloc
}

// cpuTime is the process' user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func vectorString(vec promql.Vector) string {
	parts := make([]string, 0, len(vec))
	for _, s := range vec {
		parts = append(parts, fmt.Sprintf("%s %g", s.Metric, s.F))
	}
	slices.Sort(parts)
	return "[" + strings.Join(parts, ", ") + "]"
}

// runPrometheusScale starts Prometheus without rules, remote-writes the
// fleet's hour of history into its head, then has it scrape the fleet's
// current step every 15 s from a test server (job and instance dropped,
// so the series are the same as vigil's) — a minute of that alone, to
// know what scraping costs — and loads the rule file (reload); after the
// warm-up rounds it reads the groups' last evaluation durations once an
// interval.
func runPrometheusScale(t *testing.T, prom, dir, rulesPath string, n int) scaleResult {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	api := "http://" + addr
	f := newFleet(n)
	base := time.Now().Truncate(scaleStep).Add(-(scaleHistory - 1) * scaleStep)
	at := func(k int) time.Time { return base.Add(time.Duration(k) * scaleStep) }
	var fleetMu sync.Mutex
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fleetMu.Lock()
		defer fleetMu.Unlock()
		for at(f.step + 1).Before(time.Now()) {
			f.advance()
		}
		f.writeText(w)
	})}
	go srv.Serve(target)
	defer srv.Close()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	writeConfig := func(scrape, rules bool) {
		cfg := fmt.Sprintf("global: {scrape_interval: %s, evaluation_interval: %s}\n", model.Duration(scaleStep), model.Duration(scaleEvery*scaleStep))
		if rules {
			cfg += fmt.Sprintf("rule_files: [%q]\n", rulesPath)
		}
		if scrape {
			cfg += fmt.Sprintf("scrape_configs:\n  - job_name: fleet\n    static_configs: [{targets: [%q]}]\n"+
				"    metric_relabel_configs: [{action: labeldrop, regex: job|instance}]\n", target.Addr().String())
		}
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reload := func() {
		resp, err := http.Post(api+"/-/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("reload: %s", resp.Status)
		}
	}
	writeConfig(false, false)
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(prom, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver", "--web.enable-lifecycle", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("prometheus log:\n%s", lastLines(string(b), 30))
		}
	}()
	testenv.Eventually(t, time.Minute, "prometheus ready", func() bool {
		resp, err := http.Get(api + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	var res scaleResult

	// The history, 20 steps (5 minutes) a request batch, in time order so
	// the head accepts every sample.
	w := &remoteWriter{url: api + "/api/v1/write", series: map[uint64]*rwSeries{}}
	start := time.Now()
	cpu0, err := promCPU(api)
	if err != nil {
		t.Fatal(err)
	}
	k := 0
	for ; k < scaleHistory; k++ {
		f.advance()
		w.add(f, at(k).UnixMilli())
		if (k+1)%20 == 0 || k == scaleHistory-1 {
			if err := w.flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	fleetMu.Lock()
	for ; !at(k).After(time.Now()); k++ {
		f.advance()
		w.add(f, at(k).UnixMilli())
		if err := w.flush(); err != nil {
			t.Fatal(err)
		}
	}
	fleetMu.Unlock()
	cpu1, err := promCPU(api)
	if err != nil {
		t.Fatal(err)
	}
	ingestCPU := (cpu1 - cpu0) / float64(w.samples) // per sample
	res.notes = append(res.notes, fmt.Sprintf("history: %d samples remote-written in %s, %.2f µs of Prometheus CPU a sample",
		w.samples, time.Since(start).Round(time.Millisecond), ingestCPU*1e6))

	// Scraping alone for a minute, then the rules too.
	writeConfig(true, false)
	reload()
	time.Sleep(scaleStep)
	cpu2, err := promCPU(api)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(scaleEvery * scaleStep)
	cpu3, err := promCPU(api)
	if err != nil {
		t.Fatal(err)
	}
	scrapeCPU := time.Duration((cpu3 - cpu2) * float64(time.Second))
	writeConfig(true, true)
	reload()

	// Groups start at an offset within the interval; polling once an
	// interval reads each group's latest round.
	time.Sleep(scaleWarm * scaleEvery * scaleStep)
	profiled := make(chan error, 1)
	if path := os.Getenv("RULES_PEER_PROM_CPUPROFILE"); path != "" {
		go func() { profiled <- promProfile(api, path, 2*scaleEvery*scaleStep) }()
		res.notes = append(res.notes, "CPU profile of two rounds in "+path)
	} else {
		profiled <- nil
	}
	var first, last map[string]float64
	var groups float64
	for r := 0; r < scaleRounds; r++ {
		if r > 0 {
			time.Sleep(scaleEvery * scaleStep)
		}
		sums, counts, err := promMetrics(api)
		if err != nil {
			t.Fatal(err)
		}
		if r == 0 {
			first = sums
			groups = counts["prometheus_rule_group_last_duration_seconds"]
		}
		last = sums
		if c := counts["prometheus_rule_group_last_duration_seconds"]; c != groups || c == 0 {
			t.Fatalf("prometheus reports %g groups, then %g", groups, c)
		}
		res.rounds = append(res.rounds, time.Duration(sums["prometheus_rule_group_last_duration_seconds"]*float64(time.Second)))
	}
	if err := <-profiled; err != nil {
		t.Error(err)
	}
	if fails := last["prometheus_rule_evaluation_failures_total"]; fails > 0 {
		t.Fatalf("prometheus: %g rule evaluations failed", fails)
	}
	evals := (last["prometheus_rule_group_duration_seconds_count"] - first["prometheus_rule_group_duration_seconds_count"]) / groups
	mean := (last["prometheus_rule_group_duration_seconds_sum"] - first["prometheus_rule_group_duration_seconds_sum"]) / evals
	cpu := (last["process_cpu_seconds_total"] - first["process_cpu_seconds_total"]) / evals
	res.notes = append(res.notes,
		fmt.Sprintf("mean round over the timed window (prometheus_rule_group_duration_seconds sum/count): %s over %.1f rounds",
			time.Duration(mean*float64(time.Second)).Round(time.Millisecond), evals),
		fmt.Sprintf("CPU per round (an interval): %s, of which scraping %d times ≈ %s (the interval before rules were loaded); %g group iterations missed",
			time.Duration(cpu*float64(time.Second)).Round(time.Millisecond), scaleEvery, scrapeCPU.Round(time.Millisecond),
			last["prometheus_rule_group_iterations_missed_total"]),
		fmt.Sprintf("head: %.0f series, %.0f samples appended; RSS %.1f MiB, heap in use %.1f MiB",
			last["prometheus_tsdb_head_series"], last["prometheus_tsdb_head_samples_appended_total"],
			last["process_resident_memory_bytes"]/(1<<20), last["go_memstats_heap_inuse_bytes"]/(1<<20)))
	if res.byRule, err = promRuleTimes(api); err != nil {
		t.Fatal(err)
	}
	res.check = map[string]string{}
	for _, q := range crossChecks {
		s, err := promQuery(api, q)
		if err != nil {
			t.Fatal(err)
		}
		res.check[q] = s
	}
	return res
}

// promProfile writes a CPU profile of Prometheus over d to path.
func promProfile(api, path string, d time.Duration) error {
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", api, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("prometheus profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// promRuleTimes reads each rule's last evaluation time from the rules
// API, summed by rule name.
func promRuleTimes(api string) (map[string]float64, error) {
	resp, err := http.Get(api + "/api/v1/rules")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name           string
					EvaluationTime float64
				}
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	times := map[string]float64{}
	for _, g := range out.Data.Groups {
		for _, r := range g.Rules {
			times[r.Name] += r.EvaluationTime
		}
	}
	return times, nil
}

func promCPU(api string) (float64, error) {
	sums, _, err := promMetrics(api)
	return sums["process_cpu_seconds_total"], err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// remoteWriter sends the fleet's series to Prometheus' remote-write
// receiver, with a stale marker where a series disappears, as a scrape
// would write one.
type remoteWriter struct {
	url     string
	series  map[uint64]*rwSeries
	list    []*rwSeries
	step    int
	samples int
}

type rwSeries struct {
	ts   prompb.TimeSeries
	last int // the step of its last sample
}

func (w *remoteWriter) add(f *fleet, t int64) {
	w.step++
	f.each(func(string) bool { return true }, func(lset labels.Labels, v float64) {
		h := lset.Hash()
		s := w.series[h]
		if s == nil {
			s = &rwSeries{}
			// lset's strings are the fleet's reused buffer: copied.
			lset.Range(func(l labels.Label) {
				s.ts.Labels = append(s.ts.Labels, prompb.Label{Name: strings.Clone(l.Name), Value: strings.Clone(l.Value)})
			})
			w.series[h] = s
			w.list = append(w.list, s)
		}
		s.ts.Samples = append(s.ts.Samples, prompb.Sample{Timestamp: t, Value: v})
		s.last = w.step
	})
	for _, s := range w.list {
		if s.last == w.step-1 {
			s.ts.Samples = append(s.ts.Samples, prompb.Sample{Timestamp: t, Value: math.Float64frombits(value.StaleNaN)})
		}
	}
}

// flush sends the samples added since the last flush, 5,000 series a
// request.
func (w *remoteWriter) flush() error {
	var req prompb.WriteRequest
	for i, s := range w.list {
		if len(s.ts.Samples) > 0 {
			req.Timeseries = append(req.Timeseries, s.ts)
			w.samples += len(s.ts.Samples)
		}
		if len(req.Timeseries) == 5000 || (i == len(w.list)-1 && len(req.Timeseries) > 0) {
			if err := w.send(&req); err != nil {
				return err
			}
			req.Timeseries = req.Timeseries[:0]
		}
	}
	for _, s := range w.list {
		s.ts.Samples = s.ts.Samples[:0]
	}
	return nil
}

func (w *remoteWriter) send(req *prompb.WriteRequest) error {
	raw, err := req.Marshal()
	if err != nil {
		return err
	}
	hr, err := http.NewRequest(http.MethodPost, w.url, bytes.NewReader(snappyLiteral(raw)))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("remote write: %s: %s", resp.Status, msg)
	}
	return nil
}

// snappyLiteral is b as a snappy block of a single literal element: valid
// snappy, which remote write requires, without a compression package the
// module does not otherwise depend on (the requests stay on loopback).
func snappyLiteral(b []byte) []byte {
	out := binary.AppendUvarint(make([]byte, 0, len(b)+16), uint64(len(b)))
	if len(b) == 0 {
		return out
	}
	n := uint32(len(b) - 1)
	out = append(out, 63<<2, byte(n), byte(n>>8), byte(n>>16), byte(n>>24)) // literal, 4-byte length
	return append(out, b...)
}

// promMetrics reads Prometheus' /metrics: per metric name, the sum of its
// series' values and their number.
func promMetrics(api string) (sums, counts map[string]float64, err error) {
	resp, err := http.Get(api + "/metrics")
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, nil, err
	}
	sums, counts = map[string]float64{}, map[string]float64{}
	p := textparse.NewPromParser(body, labels.NewSymbolTable(), false)
	var lset labels.Labels
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return sums, counts, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if e != textparse.EntrySeries {
			continue
		}
		_, _, v := p.Series()
		p.Labels(&lset)
		name := lset.Get(model.MetricNameLabel)
		sums[name] += v
		counts[name]++
	}
}

// promQuery runs an instant query now, its result written as vectorString
// writes vigil's.
func promQuery(api, q string) (string, error) {
	resp, err := http.Get(api + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Status, Error string
		Data          struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	if out.Status != "success" {
		return "", fmt.Errorf("query %s: %s", q, out.Error)
	}
	parts := make([]string, 0, len(out.Data.Result))
	for _, r := range out.Data.Result {
		s, _ := r.Value[1].(string)
		v, _ := strconv.ParseFloat(s, 64)
		parts = append(parts, fmt.Sprintf("%s %g", labels.FromMap(r.Metric), v))
	}
	slices.Sort(parts)
	return "[" + strings.Join(parts, ", ") + "]", nil
}
