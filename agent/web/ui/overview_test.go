package ui

import (
	"fmt"
	"slices"
	"testing"

	"github.com/vigil-project/vigil/agent/web/api"
	"github.com/vigil-project/vigil/probes"
)

// TestOverviewStep: which of a step's checks become rows, which are folded
// and what the page's limits leave out.
func TestOverviewStep(t *testing.T) {
	const net, host = probes.Step("network"), probes.Step("host")
	brief := func(name string, s probes.Step, ran, ok bool) api.Brief {
		return api.Brief{Name: name, Step: s, Ran: ran, Success: ok}
	}
	// n passing network checks p00…, then a failing and a not yet run one,
	// and a host check that belongs to another step.
	briefs := func(n int) []api.Brief {
		var out []api.Brief
		for i := range n {
			out = append(out, brief(fmt.Sprintf("p%02d", i), net, true, true))
		}
		return append(out, brief("x-fail", net, true, false), brief("y-new", net, false, false), brief("z-host", host, true, false))
	}
	lim := overviewLimits{foldPassing: 3, foldNames: 2, rows: 100}
	tests := []struct {
		name     string
		briefs   []api.Brief
		search   bool
		rowsLeft int
		rows     []string
		want     uiStep
	}{
		{"few passing: every check a row", briefs(3), false, 100,
			[]string{"p00", "p01", "p02", "x-fail", "y-new"}, uiStep{Failing: 1}},
		{"many passing: folded, names capped", briefs(5), false, 100,
			[]string{"x-fail", "y-new"}, uiStep{Failing: 1, Folded: 5, FoldNames: []string{"p00", "p01"}, FoldRest: 3}},
		{"search: every match a row", briefs(5), true, 100,
			[]string{"p00", "p01", "p02", "p03", "p04", "x-fail", "y-new"}, uiStep{Failing: 1}},
		{"row limit: the rest counted", briefs(5), true, 4,
			[]string{"p00", "p01", "p02", "p03"}, uiStep{Failing: 1, Hidden: 3}},
		{"no rows left: failing still counted", briefs(5), false, 0,
			nil, uiStep{Failing: 1, Folded: 5, FoldNames: []string{"p00", "p01"}, FoldRest: 3, Hidden: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, rows := overviewStep(net, tt.briefs, tt.search, lim, tt.rowsLeft)
			tt.want.Step = net
			if !slices.Equal(rows, tt.rows) {
				t.Errorf("rows %v, want %v", rows, tt.rows)
			}
			if fmt.Sprint(st) != fmt.Sprint(tt.want) {
				t.Errorf("step %+v, want %+v", st, tt.want)
			}
		})
	}
}
