package rules

import (
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

func TestSelection(t *testing.T) {
	t.Parallel()
	s := NewSelection()
	for _, e := range []string{
		`vigil_check_success{type="invoice_qr"} == 0`,
		`vigil_invoice_sync_missing > 0 and vigil_check_success{type="invoice_sync"} == 0`,
		`rate(vigil_log_matches_total{pattern=~"sync_.*"}[5m]) > 1`,
		`count({__name__=~"vigil_notify_.*", receiver="oncall"})`,
	} {
		if added, err := s.AddExpr(e); err != nil || !added {
			t.Fatalf("%s: %v %v", e, added, err)
		}
	}
	if added, _ := s.AddExpr(`vigil_check_success{type="invoice_qr"} == 0`); added {
		t.Error("the same expression added twice")
	}
	if _, err := s.AddExpr(`rate(x[`); err == nil {
		t.Error("a broken expression was accepted")
	}
	for _, tc := range []struct {
		series string
		want   bool
	}{
		{`vigil_check_success{check="invoice_qr", type="invoice_qr"}`, true},
		{`vigil_check_success{check="web1", type="http"}`, false},
		{`vigil_invoice_sync_missing{check="s", type="invoice_sync"}`, true},
		{`vigil_check_success{check="s", type="invoice_sync"}`, true},
		{`vigil_log_matches_total{pattern="sync_failed"}`, true},
		{`vigil_log_matches_total{pattern="slow_request"}`, false},
		{`vigil_notify_queue_length{receiver="oncall"}`, true},
		{`vigil_notify_queue_length{receiver="chat"}`, false},
		{`vigil_check_duration_seconds{check="web1"}`, false},
	} {
		lset, err := ruleParser.ParseMetric(tc.series)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Selects(lset); got != tc.want {
			t.Errorf("%s: selected %v, want %v", tc.series, got, tc.want)
		}
	}
}

// TestSelectionIndex: the index by metric name and equality matcher
// selects exactly what testing every selector would.
func TestSelectionIndex(t *testing.T) {
	t.Parallel()
	exprs := []string{
		`vigil_check_success{team="t1"} == 0`,
		`avg_over_time(vigil_check_success{team="t1"}[1h]) < 0.9`, // the same selector again
		`vigil_check_success{check="c7"} == 0`,
		`vigil_check_duration_seconds{team="t2",type="http"} > 1`,
		`vigil_check_duration_seconds{type="tcp",team="t3"} > 1`,
		`max(vigil_check_phase_duration_seconds{site="",phase="tls"})`,
		`sum(vigil_check_phase_duration_seconds{phase=~"dns|connect",team="t1"})`,
		`rate(vigil_check_runs_total{result!="success"}[5m])`,
		`count({__name__=~"vigil_check_(success|duration_seconds)",site="ams"})`,
	}
	s := NewSelection()
	var all [][]*labels.Matcher
	for _, e := range exprs {
		if _, err := s.AddExpr(e); err != nil {
			t.Fatal(err)
		}
		expr, _ := ruleParser.ParseExpr(e)
		all = append(all, parser.ExtractSelectors(expr)...)
	}
	if s.Len() != len(all)-1 {
		t.Errorf("%d selectors kept, want %d (one repeats)", s.Len(), len(all)-1)
	}
	n := 0
	for i := range 60 {
		for _, name := range []string{"vigil_check_success", "vigil_check_duration_seconds", "vigil_check_phase_duration_seconds", "vigil_check_runs_total", "other"} {
			for _, extra := range [][2]string{{"phase", []string{"dns", "connect", "tls"}[i%3]}, {"result", []string{"success", "failure"}[i%2]}} {
				b := labels.NewBuilder(labels.FromStrings("__name__", name, "check", fmt.Sprintf("c%d", i), "team", fmt.Sprintf("t%d", i%4),
					"type", []string{"http", "tcp"}[i%2], extra[0], extra[1]))
				if i%3 == 0 {
					b.Set("site", "ams")
				}
				lset := b.Labels()
				want := slices.ContainsFunc(all, func(ms []*labels.Matcher) bool { return matchesAll(lset, ms) })
				if got := s.Selects(lset); got != want {
					t.Errorf("%s: selected %v, want %v", lset, got, want)
				}
				if want {
					n++
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("nothing selected: the case tests nothing")
	}
}

// TestScraperKeepsOnlySelected: with a selection, the store holds only the
// selected series; a series deselected by a new selection goes stale.
func TestScraperKeepsOnlySelected(t *testing.T) {
	t.Parallel()
	st := NewStore()
	sc := NewScraper(st, TextSource(func(w io.Writer) {
		for i := range 100 {
			fmt.Fprintf(w, "vigil_check_success{check=\"web%d\",type=\"http\"} 1\n", i)
		}
		fmt.Fprintln(w, `vigil_check_success{check="invoice_qr",type="invoice_qr"} 0`)
	}))
	sel := NewSelection()
	sel.AddExpr(`vigil_check_success{type="invoice_qr"} == 0`)
	sc.Select(sel)
	t0 := time.Unix(1_800_000_000, 0)
	n, err := sc.Scrape(t0)
	if series, _, _ := st.Stats(); err != nil || n != 1 || series != 1 {
		t.Fatalf("scraped %d (%v), stored %d series; want 1", n, err, series)
	}
	sc.Select(NewSelection())
	sc.Scrape(t0.Add(30 * time.Second))
	if v := instant(t, st, `vigil_check_success`, t0.Add(31*time.Second)); len(v) != 0 {
		t.Errorf("deselected series not stale: %v", v)
	}

}
