package api

import (
	"net/http"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/web/httpx"
)

// SLOViews are the configured SLOs with their attainment, budget and
// burn-down, in config order.
func (api *API) SLOViews() []client.SLO {
	if api.slos == nil {
		return nil
	}
	sts := api.slos.Statuses()
	out := make([]client.SLO, 0, len(sts))
	for _, st := range sts {
		v := client.SLO{Name: st.Name, Description: st.Description, Objective: st.Objective,
			Window: model.Duration(st.Window).String(), Checks: st.Checks, Runs: st.Runs, Failed: st.Failed,
			Burn: make([]client.BurnPoint, 0, len(st.Burn)), ComputedAt: st.At.UTC()}
		if a, ok := st.Attainment(); ok {
			v.Attainment = &a
		}
		if b, ok := st.BudgetRemaining(); ok {
			v.BudgetRemaining = &b
		}
		for _, p := range st.Burn {
			v.Burn = append(v.Burn, client.BurnPoint{At: p.At.UTC(), Remaining: p.Remaining})
		}
		out = append(out, v)
	}
	return out
}

func (api *API) handleSLOs(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"slos": api.SLOViews()})
}
