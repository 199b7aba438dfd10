package api

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/agent/web/httpx"
	"github.com/vigil-project/vigil/probes"
)

// Step states of the public status, worst last.
var stepStates = []string{"operational", "unknown", "degraded", "down"}

func worse(a, b string) string {
	rank := func(s string) int {
		for i, x := range stepStates {
			if x == s {
				return i
			}
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// PublicText is the public status page's configured title and
// description in lang (public_status; "" for the page's defaults).
func (api *API) PublicText(lang string) (title, description string) {
	if c, ok := api.state.(Configured); ok {
		if cfg := c.Config(); cfg != nil {
			return cfg.PublicStatus.Text(lang)
		}
	}
	return "", ""
}

// PublicStatus builds the public status. It reads only what may be shown
// to anyone who can reach the agent: step names, pooled counts, SLO names
// and descriptions, and public_summary annotations.
func (api *API) PublicStatus(ctx context.Context) client.PublicStatus {
	out := client.PublicStatus{Status: "operational", UpdatedAt: time.Now().UTC()}
	out.Title, out.Description = api.PublicText("en")
	type acc struct {
		ran, failing, total int
		counts              [3]store.Counts
	}
	steps := map[probes.Step]*acc{}
	stepOf := map[string]probes.Step{}
	for _, c := range api.state.Checks() {
		f, ok := probes.Lookup(c.Type)
		if !ok {
			continue
		}
		stepOf[c.Name] = f.Step
		a := steps[f.Step]
		if a == nil {
			a = &acc{}
			steps[f.Step] = a
		}
		a.total++
		if ran, ok := api.state.Outcome(c.Name); ran {
			a.ran++
			if !ok {
				a.failing++
			}
		}
		if api.uptime != nil {
			u := api.uptime.Get(c.Name)
			for i := range a.counts {
				a.counts[i] = a.counts[i].Add(u[i])
			}
		}
	}
	for _, s := range probes.Steps() {
		a := steps[s]
		if a == nil {
			continue
		}
		st := "operational"
		switch {
		case a.ran == 0:
			st = "unknown"
		case a.failing == a.ran:
			st = "down"
		case a.failing > 0:
			st = "degraded"
		}
		out.Status = worse(out.Status, st)
		out.Steps = append(out.Steps, client.PublicStep{Step: string(s), Status: st, Uptime: uptimeViews(a.counts[:])})
	}
	if api.slos != nil {
		for _, st := range api.slos.Statuses() {
			v := client.PublicSLO{Name: st.Name, Description: st.Description, Objective: st.Objective, Window: model.Duration(st.Window).String()}
			if a, ok := st.Attainment(); ok {
				v.Attainment = &a
			}
			if b, ok := st.BudgetRemaining(); ok {
				v.BudgetRemaining = &b
			}
			out.SLOs = append(out.SLOs, v)
		}
	}
	if api.incidentList != nil {
		if ins, err := api.incidentList.OpenIncidents(ctx); err == nil {
			for _, in := range ins {
				out.Incidents = append(out.Incidents, client.PublicIncident{Step: string(stepOf[in.Check]),
					Since: in.FiringAt.UTC(), Summary: in.Annotations["public_summary"]})
			}
		}
	}
	return out
}

func (api *API) handleStatus(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, api.PublicStatus(r.Context()))
}
