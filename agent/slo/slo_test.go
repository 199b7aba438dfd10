package slo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/probes"
	_ "github.com/vigil-project/vigil/probes/all"
	"github.com/vigil-project/vigil/rules"
)

// TestShippedRulesInStep: examples/slo/vigil-slos.rules.yml is what
// `vigil slo rules examples/vigil.yml` prints, and it passes the rule
// checker (promtool's checks; rules/unittest_test.go runs its tests under
// both vigil and promtool).
func TestShippedRulesInStep(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("../../examples/vigil.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.SLOs) == 0 {
		t.Fatal("examples/vigil.yml has no slos")
	}
	want, err := Rules(cfg.SLOs)
	if err != nil {
		t.Fatal(err)
	}
	const shipped = "../../examples/slo/vigil-slos.rules.yml"
	got, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of step with examples/vigil.yml: regenerate it with\n  go run . slo rules examples/vigil.yml > examples/slo/vigil-slos.rules.yml", shipped)
	}
	var out, errOut strings.Builder
	if !rules.CheckFiles(&out, &errOut, shipped) {
		t.Errorf("rules check: %s%s", out.String(), errOut.String())
	}
	groups, err := Groups(cfg)
	if err != nil || len(groups) != len(cfg.SLOs) {
		t.Fatalf("Groups: %d groups, %v", len(groups), err)
	}
}

func TestBurnRates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		window     time.Duration
		page1, pg2 float64
	}{
		{30 * 24 * time.Hour, 14.4, 6},
		{28 * 24 * time.Hour, 13.44, 5.6},
		{7 * 24 * time.Hour, 3.36, 1.4},
	} {
		if got := pageWindows[0].BurnRate(tc.window); formatThreshold(got) != formatThreshold(tc.page1) {
			t.Errorf("%s: 1h burn rate %v, want %v", tc.window, got, tc.page1)
		}
		if got := pageWindows[1].BurnRate(tc.window); formatThreshold(got) != formatThreshold(tc.pg2) {
			t.Errorf("%s: 6h burn rate %v, want %v", tc.window, got, tc.pg2)
		}
	}
	if got := checksMatcher([]string{"tax.gw-1", "a|b", `q"x`}); got != `check=~"a\\|b|q\"x|tax\\.gw-1"` {
		t.Errorf("matcher %s", got)
	}
}

// TestEngine computes an SLO from a real store: 100 runs an hour for ten
// hours, 5 failing in hour 3 and 1 in hour 8; objective 0.99.
func TestEngine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().Truncate(time.Hour).Add(30 * time.Minute)
	start := now.Add(-10 * time.Hour)
	for h := range 10 {
		for i := range 100 {
			ok := !(h == 3 && i < 5) && !(h == 8 && i == 0)
			check := []string{"a", "b"}[i%2]
			st.Record(store.Record{Check: check, Type: "http", Result: probes.Result{Start: start.Add(time.Duration(h)*time.Hour + time.Duration(i)*time.Second), Success: ok}})
		}
	}
	st.Record(store.Record{Check: "other", Type: "http", Result: probes.Result{Start: now.Add(-time.Minute)}})
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	e := NewEngine(st, nil, nil)
	e.Set([]config.SLO{
		{Name: "web", Objective: 0.99, Window: model.Duration(30 * 24 * time.Hour), Checks: []string{"a", "b"}},
		{Name: "idle", Objective: 0.9, Window: model.Duration(24 * time.Hour), Checks: []string{"nosuch"}},
	})
	if err := e.Refresh(ctx, now); err != nil {
		t.Fatal(err)
	}
	sts := e.Statuses()
	web := sts[0]
	if web.Runs != 1000 || web.Failed != 6 {
		t.Fatalf("web: %d runs, %d failed; want 1000, 6", web.Runs, web.Failed)
	}
	if a, ok := web.Attainment(); !ok || a != 0.994 {
		t.Errorf("attainment %v", a)
	}
	// Budget: 1% of 1000 runs = 10 failures; 6 spent.
	if b, ok := web.BudgetRemaining(); !ok || formatThreshold(b) != "0.4" {
		t.Errorf("budget remaining %v, want 0.4", b)
	}
	if len(web.Burn) != 10 || formatThreshold(web.Burn[2].Remaining) != "1" || formatThreshold(web.Burn[3].Remaining) != "0.5" ||
		formatThreshold(web.Burn[9].Remaining) != "0.4" {
		t.Errorf("burn-down %+v", web.Burn)
	}
	if _, ok := sts[1].Attainment(); ok {
		t.Error("an SLO without runs has an attainment")
	}
	var b bytes.Buffer
	e.WritePrometheus(&b)
	for _, want := range []string{
		"vigil_slo_attainment_ratio{slo=\"web\"} 0.994\n",
		"vigil_slo_error_budget_remaining_ratio{slo=\"web\"} 0.4",
		"vigil_slo_objective_ratio{slo=\"idle\"} 0.9\n",
		"vigil_slo_window_runs{slo=\"idle\"} 0\n",
		"vigil_slo_window_seconds{slo=\"web\"} 2.592e+06\n",
		"# HELP vigil_slo_error_budget_remaining_ratio ",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), `vigil_slo_attainment_ratio{slo="idle"}`) {
		t.Error("attainment exported for an SLO without runs")
	}
}

// TestPromQLSLI: an SLO over PromQL queries records the hour's events from
// the queries' rates every refresh, completes the hour when it turns, and
// computes attainment and budget from them.
func TestPromQLSLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// 10 requests a second, 0.1 of them server errors.
	var asked []string
	query := func(_ context.Context, expr string, _ time.Time) (float64, bool, error) {
		asked = append(asked, expr)
		switch {
		case strings.Contains(expr, `pattern="server_error"`):
			return 0.1, true, nil
		case strings.Contains(expr, `pattern="request"`):
			return 10, true, nil
		}
		return 0, false, nil
	}
	e := NewEngine(st, query, nil)
	e.Set([]config.SLO{{Name: "api", Objective: 0.995, Window: model.Duration(30 * 24 * time.Hour), SLI: &config.SLIQueries{
		ErrorQuery: `sum(rate(vigil_log_matches_total{pattern="server_error"}[{{.window}}]))`,
		TotalQuery: `sum(rate(vigil_log_matches_total{pattern="request"}[{{ .window }}]))`,
	}}})
	hour := time.Now().Truncate(time.Hour).Add(-2 * time.Hour)
	if err := e.Refresh(ctx, hour.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	api := e.Statuses()[0]
	if api.Runs != 18000 || api.Failed != 180 {
		t.Fatalf("after 30 minutes: %d events, %d bad; want 18000, 180", api.Runs, api.Failed)
	}
	// A reload with the same SLO (a new config, equal values) keeps its
	// status until the next refresh.
	same := e.Statuses()[0].SLO
	sli := *same.SLI
	same.SLI = &sli
	e.Set([]config.SLO{same})
	if got := e.Statuses()[0].Runs; got != 18000 {
		t.Errorf("after reloading the same SLO: %d events, want the 18000 kept", got)
	}
	if !strings.Contains(strings.Join(asked, " "), "[30m]") {
		t.Errorf("queries not over the 30 minutes so far: %q", asked)
	}
	// The hour turns: the last one is read whole, the new one so far.
	if err := e.Refresh(ctx, hour.Add(65*time.Minute)); err != nil {
		t.Fatal(err)
	}
	api = e.Statuses()[0]
	if api.Runs != 36000+3000 || api.Failed != 360+30 {
		t.Errorf("after the hour turned: %d events, %d bad; want 39000, 390", api.Runs, api.Failed)
	}
	if a, _ := api.Attainment(); formatThreshold(a) != "0.99" {
		t.Errorf("attainment %v, want 0.99", a)
	}
	if b, _ := api.BudgetRemaining(); formatThreshold(b) != "-1" {
		t.Errorf("budget remaining %v, want -1 (1%% bad against 0.5%% allowed)", b)
	}
	if !strings.Contains(strings.Join(asked, " "), "[1h]") {
		t.Errorf("the finished hour was not read whole: %q", asked)
	}
}

// TestPromQLSLIWithoutEvents: an SLI whose queries find no events has no
// attainment and no burn-down point (0/0 is not a point, and NaN cannot
// be answered as JSON).
func TestPromQLSLIWithoutEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := NewEngine(st, func(context.Context, string, time.Time) (float64, bool, error) { return 0, true, nil }, nil)
	e.Set([]config.SLO{{Name: "quiet", Objective: 0.99, Window: model.Duration(24 * time.Hour),
		SLI: &config.SLIQueries{ErrorQuery: `sum(rate(x[{{.window}}]))`, TotalQuery: `sum(rate(y[{{.window}}]))`}}})
	if err := e.Refresh(ctx, time.Now().Truncate(time.Hour).Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	s := e.Statuses()[0]
	if _, ok := s.Attainment(); ok || len(s.Burn) != 0 {
		t.Errorf("without events: attainment ok %v, burn-down %+v", ok, s.Burn)
	}
}

// TestEngineBurnRates reads the burn rates from the recording rules'
// series: the error ratio over the budget, per window pair; unknown
// without a sample.
func TestEngineBurnRates(t *testing.T) {
	t.Parallel()
	ratios := map[string]float64{"1h": 0.02, "5m": 0.5, "6h": 0.001}
	var asked []string
	query := func(_ context.Context, expr string, _ time.Time) (float64, bool, error) {
		asked = append(asked, expr)
		for w, v := range ratios {
			if strings.HasPrefix(expr, "slo:sli_error:ratio_rate"+w+"{") {
				return v, true, nil
			}
		}
		return 0, false, nil
	}
	e := NewEngine(nil, query, nil)
	s := config.SLO{Name: "web", Objective: 0.99, Window: model.Duration(30 * 24 * time.Hour), Checks: []string{"a"}}
	rates, err := e.BurnRates(context.Background(), s, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(rates) != 2 {
		t.Fatalf("%d window pairs, want 2", len(rates))
	}
	r1, r2 := rates[0], rates[1]
	if r1.Long != time.Hour || r1.Short != 5*time.Minute || formatThreshold(r1.Threshold) != "14.4" ||
		!r1.LongKnown || formatThreshold(r1.LongRate) != "2" || formatThreshold(r1.ShortRate) != "50" || r1.Exceeded() {
		t.Errorf("1h/5m: %+v", r1)
	}
	if r2.Long != 6*time.Hour || r2.Short != 30*time.Minute || formatThreshold(r2.Threshold) != "6" ||
		formatThreshold(r2.LongRate) != "0.1" || r2.ShortKnown || r2.Exceeded() {
		t.Errorf("6h/30m: %+v", r2)
	}
	if !strings.Contains(strings.Join(asked, " "), `slo:sli_error:ratio_rate5m{slo="web"}`) {
		t.Errorf("queries %q", asked)
	}
	ratios["1h"] = 0.2
	rates, _ = e.BurnRates(context.Background(), s, time.Now())
	if !rates[0].Exceeded() {
		t.Errorf("a burn rate of 20 over 1h and 50 over 5m is not over 14.4: %+v", rates[0])
	}
	if rates, _ := NewEngine(nil, nil, nil).BurnRates(context.Background(), s, time.Now()); len(rates) != 2 || rates[0].LongKnown {
		t.Errorf("without a query: %+v", rates)
	}
}

// TestAlert finds an SLO's burn-rate alert among loaded groups, and says
// when it is not loaded.
func TestAlert(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{SLOs: []config.SLO{{Name: "web", Objective: 0.99, Window: model.Duration(30 * 24 * time.Hour), Checks: []string{"a"}}}}
	groups, err := Groups(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ai := Alert(groups, "web"); !ai.Loaded || ai.State != "inactive" {
		t.Errorf("web: %+v", ai)
	}
	if ai := Alert(groups, "other"); ai.Loaded {
		t.Errorf("other: %+v", ai)
	}
	if ai := Alert(nil, "web"); ai.Loaded {
		t.Errorf("no groups: %+v", ai)
	}
}
