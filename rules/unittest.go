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
		lset, vals, err := ruleParser.ParseSeriesDesc(s.Series + " " + s.Values)
		if err != nil {
			return []error{fmt.Errorf("%sinput series %q: %w", prefix, s.Series, err)}
		}
		ss := &seriesSamples{lset: lset}
		for i, v := range vals {
			if v.Omitted {
				continue
			}
			ss.samples = append(ss.samples, sample{t: mint.Add(time.Duration(i) * interval).UnixMilli(), v: v.Value})
		}
		input = append(input, ss)
	}

	store := NewStore()
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
	feed := func(upto time.Time) {
		for _, ss := range input {
			for ss.next < len(ss.samples) && ss.samples[ss.next].t <= upto.UnixMilli() {
				store.Append(ss.lset, ss.samples[ss.next].t, ss.samples[ss.next].v)
				ss.next++
			}
		}
	}
	for ts := mint; !ts.After(maxt); ts = ts.Add(evalInterval) {
		feed(ts)
		for _, g := range groups {
			m.EvalGroup(ctx, g, ts)
			for _, r := range g.Rules {
				if err := ruleErr(r); err != nil {
					return append(errs, fmt.Errorf("    rule: %s, time: %s, err: %w", ruleName(r), ts.Sub(mint), err))
				}
			}
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
	feed(maxt.Add(time.Hour * 24 * 365))

	for _, tc := range tg.PromqlExprTests {
		got, err := m.query(ctx, tc.Expr, mint.Add(time.Duration(tc.EvalTime)))
		if err != nil {
			errs = append(errs, fmt.Errorf("    expr: %q, time: %s, err: %s", tc.Expr, tc.EvalTime, err))
			continue
		}
		var exp []labelsValue
		bad := false
		for _, s := range tc.ExpSamples {
			lb, err := ruleParser.ParseMetric(s.Labels)
			if err != nil {
				errs = append(errs, fmt.Errorf("    expr: %q, time: %s, err: labels %q: %w", tc.Expr, tc.EvalTime, s.Labels, err))
				bad = true
				break
			}
			exp = append(exp, labelsValue{lb, s.Value})
		}
		if bad {
			continue
		}
		var gotLV []labelsValue
		for _, s := range got {
			gotLV = append(gotLV, labelsValue{s.Metric, s.F})
		}
		sort.Slice(exp, func(i, j int) bool { return labels.Compare(exp[i].l, exp[j].l) <= 0 })
		sort.Slice(gotLV, func(i, j int) bool { return labels.Compare(gotLV[i].l, gotLV[j].l) <= 0 })
		if !equalLV(exp, gotLV, f.FuzzyCompare) {
			errs = append(errs, fmt.Errorf("    expr: %q, time: %s,\n        exp: %v\n        got: %v", tc.Expr, tc.EvalTime, lvString(exp), lvString(gotLV)))
		}
	}
	return errs
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
}

func equalLV(a, b []labelsValue, fuzzy bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !labels.Equal(a[i].l, b[i].l) {
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

func lvString(x []labelsValue) string {
	parts := make([]string, 0, len(x))
	for _, lv := range x {
		parts = append(parts, fmt.Sprintf("%s %g", lv.l, lv.v))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
