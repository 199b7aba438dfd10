package rules

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"gopkg.in/yaml.v3"
)

// The promtool rule unit-test format (`promtool test rules`), so the same
// test files run against vigil and against Prometheus.
type unitTestFile struct {
	RuleFiles          []string       `yaml:"rule_files"`
	EvaluationInterval model.Duration `yaml:"evaluation_interval,omitempty"`
	GroupEvalOrder     []string       `yaml:"group_eval_order"`
	Tests              []testGroup    `yaml:"tests"`
	FuzzyCompare       bool           `yaml:"fuzzy_compare,omitempty"`
}

type testGroup struct {
	Interval        model.Duration    `yaml:"interval"`
	InputSeries     []inputSeries     `yaml:"input_series"`
	AlertRuleTests  []alertTestCase   `yaml:"alert_rule_test,omitempty"`
	PromqlExprTests []promqlTestCase  `yaml:"promql_expr_test,omitempty"`
	ExternalLabels  map[string]string `yaml:"external_labels,omitempty"`
	ExternalURL     string            `yaml:"external_url,omitempty"`
	TestGroupName   string            `yaml:"name,omitempty"`
	// StartTimestamp is when the input series start and eval_time counts
	// from (promtool's start_timestamp); the Unix epoch when unset.
	StartTimestamp startTimestamp `yaml:"start_timestamp,omitempty"`
}

// startTimestamp reads promtool's start_timestamp: Unix seconds (with a
// fraction) or RFC 3339.
type startTimestamp struct{ time.Time }

func (t *startTimestamp) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		t.Time = time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC()
		return nil
	}
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("cannot parse %q to a valid timestamp", s)
	}
	t.Time = ts
	return nil
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertTestCase struct {
	EvalTime  model.Duration `yaml:"eval_time"`
	Alertname string         `yaml:"alertname"`
	ExpAlerts []expAlert     `yaml:"exp_alerts"`
}

type expAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

type promqlTestCase struct {
	Expr       string         `yaml:"expr"`
	EvalTime   model.Duration `yaml:"eval_time"`
	ExpSamples []expSample    `yaml:"exp_samples"`
}

type expSample struct {
	Labels string  `yaml:"labels"`
	Value  float64 `yaml:"value"`
	// Histogram is an expected native histogram in the input_series
	// notation ({{schema:0 count:4 sum:5 buckets:[1 2 1]}}). As in
	// promtool, Value is still compared: a histogram sample's float is 0.
	Histogram string `yaml:"histogram"`
}

// TestFiles runs promtool-format rule unit-test files, printing as promtool
// does, and reports whether all passed.
func TestFiles(stdout, stderr io.Writer, files ...string) bool {
	ok := true
	for _, f := range files {
		fmt.Fprintf(stdout, "Processing test file: %s\n", f)
		if errs := testFile(f); len(errs) > 0 {
			fmt.Fprintln(stderr, "  FAILED:")
			for _, e := range errs {
				fmt.Fprintln(stderr, e.Error())
				fmt.Fprintln(stdout)
			}
			ok = false
		} else {
			fmt.Fprintln(stdout, "  SUCCESS")
		}
		fmt.Fprintln(stdout)
	}
	return ok
}

func testFile(path string) []error {
	b, err := os.ReadFile(path)
	if err != nil {
		return []error{err}
	}
	var f unitTestFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return []error{fmt.Errorf("%s: %w", path, err)}
	}
	if f.EvaluationInterval == 0 {
		f.EvaluationInterval = model.Duration(time.Minute)
	}
	var errs []error
	for _, tg := range f.Tests {
		errs = append(errs, tg.run(filepath.Dir(path), &f)...)
	}
	return errs
}

func (tg *testGroup) maxEvalTime() time.Duration {
	var m model.Duration
	for _, a := range tg.AlertRuleTests {
		m = max(m, a.EvalTime)
	}
	for _, p := range tg.PromqlExprTests {
		m = max(m, p.EvalTime)
	}
	return time.Duration(m)
}

type sample struct {
	t int64
	v float64
	h *histogram.FloatHistogram // a native-histogram sample when set
}

type seriesSamples struct {
	lset    labels.Labels
	samples []sample
	next    int
}

func (tg *testGroup) run(dir string, f *unitTestFile) []error {
	evalInterval := time.Duration(f.EvaluationInterval)
	interval := time.Duration(tg.Interval)
	if interval == 0 {
		interval = evalInterval
	}
	prefix := ""
	if tg.TestGroupName != "" {
		prefix = fmt.Sprintf("    name: %s,\n", tg.TestGroupName)
	}
	groups, err := LoadFiles(dir, f.RuleFiles, evalInterval, tg.ExternalLabels, tg.ExternalURL, nil)
	if err != nil {
		return []error{err}
	}
	if len(f.GroupEvalOrder) > 0 {
		order := map[string]int{}
		for i, n := range f.GroupEvalOrder {
			order[n] = i
		}
		for _, g := range groups {
			if _, ok := order[g.Name]; !ok {
				return []error{fmt.Errorf("group %q is missing from group_eval_order", g.Name)}
			}
		}
		sort.SliceStable(groups, func(i, j int) bool { return order[groups[i].Name] < order[groups[j].Name] })
	}

	mint := time.Unix(0, 0).UTC()
	if !tg.StartTimestamp.IsZero() {
		mint = tg.StartTimestamp.Time
	}
	var input []*seriesSamples
	for _, s := range tg.InputSeries {
		ss, err := parseInputSeries(s, mint, interval)
		if err != nil {
			return []error{fmt.Errorf("%s%w", prefix, err)}
		}
		input = append(input, ss)
	}

	store := NewStore()
	store.chunkRange = promtoolChunkRange
	m := NewManager(Options{Store: store, Engine: newTestEngine(), Notifier: discardNotifier{}})
	m.Update(groups)
	ctx := context.Background()

	alertTests := map[model.Duration][]alertTestCase{}
	var evalTimes []model.Duration
	for _, a := range tg.AlertRuleTests {
		if a.Alertname == "" {
			return []error{fmt.Errorf("%san item under alert_rule_test misses required attribute alertname at eval_time %v", prefix, a.EvalTime)}
		}
		if _, seen := alertTests[a.EvalTime]; !seen {
			evalTimes = append(evalTimes, a.EvalTime)
		}
		alertTests[a.EvalTime] = append(alertTests[a.EvalTime], a)
	}
	slices.Sort(evalTimes)

	var errs []error
	maxt := mint.Add(tg.maxEvalTime())
	curr := 0
	feed := func(upto time.Time) error {
		for _, ss := range input {
			if err := ss.feed(store, upto.UnixMilli()); err != nil {
				return err
			}
		}
		return nil
	}
	for ts := mint; !ts.After(maxt); ts = ts.Add(evalInterval) {
		if err := feed(ts); err != nil {
			return append(errs, fmt.Errorf("%s%w", prefix, err))
		}
		// Every rule that failed at this time is reported, then the test
		// group stops, as promtool does.
		var evalErrs []error
		for _, g := range groups {
			m.EvalGroup(ctx, g, ts)
			for _, r := range g.Rules {
				if err := ruleErr(r); err != nil {
					evalErrs = append(evalErrs, fmt.Errorf("    rule: %s, time: %s, err: %w", ruleName(r), ts.Sub(mint), err))
				}
			}
		}
		if len(evalErrs) > 0 {
			return append(errs, evalErrs...)
		}
		for curr < len(evalTimes) && ts.Sub(mint) <= time.Duration(evalTimes[curr]) && time.Duration(evalTimes[curr]) < ts.Add(evalInterval).Sub(mint) {
			t := evalTimes[curr]
			for _, tc := range alertTests[t] {
				got := firing(groups, tc.Alertname)
				var exp []labelsAnnotations
				for _, a := range tc.ExpAlerts {
					l := map[string]string{}
					for k, v := range a.ExpLabels {
						l[k] = v
					}
					l[labels.AlertName] = tc.Alertname
					exp = append(exp, labelsAnnotations{labels.FromMap(l), labels.FromMap(a.ExpAnnotations)})
				}
				sortLA(got)
				sortLA(exp)
				if !equalLA(exp, got) {
					errs = append(errs, fmt.Errorf("%s    alertname: %s, time: %s, \n        exp:%v, \n        got:%v",
						prefix, tc.Alertname, t, laString(exp), laString(got)))
				}
			}
			curr++
		}
	}
	if err := feed(maxt.Add(time.Hour * 24 * 365)); err != nil {
		return append(errs, fmt.Errorf("%s%w", prefix, err))
	}

	for _, tc := range tg.PromqlExprTests {
		if err := tc.check(ctx, m, mint, f.FuzzyCompare); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// parseInputSeries reads one input series: its samples at mint, mint +
// interval, …, floats or native histograms. A histogram Prometheus would
// reject (a negative bucket, a schema out of range) is an error here,
// before any rule runs, naming the series and the value.
func parseInputSeries(s inputSeries, mint time.Time, interval time.Duration) (*seriesSamples, error) {
	lset, vals, err := ruleParser.ParseSeriesDesc(s.Series + " " + s.Values)
	if err != nil {
		return nil, fmt.Errorf("input series %q: %w", s.Series, err)
	}
	ss := &seriesSamples{lset: lset}
	for i, v := range vals {
		if v.Omitted {
			continue
		}
		if v.Histogram != nil {
			if err := v.Histogram.Validate(); err != nil {
				return nil, fmt.Errorf("input series %q: histogram %s (value %d): %w", s.Series, v.Histogram.TestExpression(), i+1, err)
			}
		}
		ss.samples = append(ss.samples, sample{t: mint.Add(time.Duration(i) * interval).UnixMilli(), v: v.Value, h: v.Histogram})
	}
	return ss, nil
}

// feed appends the series' samples up to t (milliseconds) to st.
func (ss *seriesSamples) feed(st *Store, t int64) error {
	for ; ss.next < len(ss.samples) && ss.samples[ss.next].t <= t; ss.next++ {
		smpl := ss.samples[ss.next]
		if smpl.h == nil {
			st.Append(ss.lset, smpl.t, smpl.v)
			continue
		}
		if err := st.AppendHistogram(ss.lset, smpl.t, smpl.h); err != nil {
			return fmt.Errorf("input series %s: %w", ss.lset, err)
		}
	}
	return nil
}

// check runs one promql_expr_test and compares its result with
// exp_samples as promtool does: labels, float value and histogram.
func (tc *promqlTestCase) check(ctx context.Context, m *Manager, mint time.Time, fuzzy bool) error {
	got, err := m.query(ctx, tc.Expr, mint.Add(time.Duration(tc.EvalTime)))
	if err != nil {
		return fmt.Errorf("    expr: %q, time: %s, err: %s", tc.Expr, tc.EvalTime, err)
	}
	var exp []labelsValue
	for _, s := range tc.ExpSamples {
		lv, err := s.parse()
		if err != nil {
			return fmt.Errorf("    expr: %q, time: %s, err: %w", tc.Expr, tc.EvalTime, err)
		}
		exp = append(exp, lv)
	}
	gotLV := make([]labelsValue, 0, len(got))
	for _, s := range got {
		gotLV = append(gotLV, labelsValue{l: s.Metric, v: s.F, h: histogramString(s.H)})
	}
	sort.Slice(exp, func(i, j int) bool { return labels.Compare(exp[i].l, exp[j].l) <= 0 })
	sort.Slice(gotLV, func(i, j int) bool { return labels.Compare(gotLV[i].l, gotLV[j].l) <= 0 })
	if !equalLV(exp, gotLV, fuzzy) {
		return fmt.Errorf("    expr: %q, time: %s,\n        exp: %v\n        got: %v", tc.Expr, tc.EvalTime, lvString(exp), lvString(gotLV))
	}
	return nil
}

// parse reads an expected sample's labels and histogram.
func (s expSample) parse() (labelsValue, error) {
	lb, err := ruleParser.ParseMetric(s.Labels)
	if err != nil {
		return labelsValue{}, fmt.Errorf("labels %q: %w", s.Labels, err)
	}
	lv := labelsValue{l: lb, v: s.Value}
	if s.Histogram == "" {
		return lv, nil
	}
	h, err := parseHistogram(s.Histogram)
	if err != nil {
		return labelsValue{}, fmt.Errorf("labels %q: histogram %q: %w", s.Labels, s.Histogram, err)
	}
	lv.h = histogramString(h)
	return lv, nil
}

// parseHistogram reads one native histogram in the series notation.
func parseHistogram(text string) (*histogram.FloatHistogram, error) {
	_, vals, err := ruleParser.ParseSeriesDesc("{} " + text)
	switch {
	case err != nil:
		return nil, err
	case len(vals) != 1:
		return nil, fmt.Errorf("expected 1 value, got %d", len(vals))
	case vals[0].Histogram == nil:
		return nil, fmt.Errorf("expected a histogram, got %v", vals[0])
	}
	return vals[0].Histogram, nil
}

// histogramString is how a histogram is compared and shown: the series
// notation, with its buckets compacted (promtool compares the same text).
func histogramString(h *histogram.FloatHistogram) string {
	if h == nil {
		return ""
	}
	return h.TestExpression()
}

type discardNotifier struct{}

func (discardNotifier) Send([]*Alert) {}

func ruleErr(r any) error { return r.(interface{ lastErr() error }).lastErr() }

func ruleName(r any) string {
	switch r := r.(type) {
	case *AlertingRule:
		return r.name
	case *RecordingRule:
		return r.name
	}
	return ""
}

type labelsAnnotations struct{ l, a labels.Labels }

func firing(groups []*Group, name string) []labelsAnnotations {
	var out []labelsAnnotations
	for _, g := range groups {
		for _, r := range g.Rules {
			ar, ok := r.(*AlertingRule)
			if !ok || ar.name != name {
				continue
			}
			for _, a := range ar.Alerts() {
				if a.State == StateFiring {
					out = append(out, labelsAnnotations{a.Labels, a.Annotations})
				}
			}
		}
	}
	return out
}

func sortLA(x []labelsAnnotations) {
	sort.Slice(x, func(i, j int) bool {
		if c := labels.Compare(x[i].l, x[j].l); c != 0 {
			return c < 0
		}
		return labels.Compare(x[i].a, x[j].a) < 0
	})
}

func equalLA(a, b []labelsAnnotations) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !labels.Equal(a[i].l, b[i].l) || !labels.Equal(a[i].a, b[i].a) {
			return false
		}
	}
	return true
}

func laString(x []labelsAnnotations) string {
	parts := make([]string, 0, len(x))
	for i, la := range x {
		parts = append(parts, fmt.Sprintf("\n            %d:\n              Labels:%s\n              Annotations:%s\n", i, la.l, la.a))
	}
	return "[" + strings.Join(parts, "") + "]"
}

type labelsValue struct {
	l labels.Labels
	v float64
	h string // histogramString of a histogram sample, else empty
}

func equalLV(a, b []labelsValue, fuzzy bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !labels.Equal(a[i].l, b[i].l) || a[i].h != b[i].h {
			return false
		}
		x, y := a[i].v, b[i].v
		same := x == y || (math.IsNaN(x) && math.IsNaN(y))
		if !same && fuzzy {
			same = math.Nextafter(x, math.Inf(-1)) == y || math.Nextafter(x, math.Inf(1)) == y
		}
		if !same {
			return false
		}
	}
	return true
}

// lvString shows samples as promtool does: "nil" for none, floats in
// exponent notation, histograms in the series notation.
func lvString(x []labelsValue) string {
	if len(x) == 0 {
		return "nil"
	}
	parts := make([]string, 0, len(x))
	for _, lv := range x {
		if lv.h != "" {
			parts = append(parts, lv.l.String()+" "+lv.h)
			continue
		}
		parts = append(parts, lv.l.String()+" "+strconv.FormatFloat(lv.v, 'E', -1, 64))
	}
	return strings.Join(parts, ", ")
}
