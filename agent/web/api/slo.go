package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/slo"
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
		out = append(out, sloView(st))
	}
	return out
}

func sloView(st slo.Status) client.SLO {
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
	return v
}

// ErrNoSLO is the answer for an SLO that is not configured.
var ErrNoSLO = errors.New("no such SLO")

// SLOBurnRates is an SLOs that reads the current burn rates (the agent's
// slo.Engine does).
type SLOBurnRates interface {
	BurnRates(ctx context.Context, s config.SLO, now time.Time) ([]slo.BurnRate, error)
}

// SLODetail is one SLO with its SLI, its current burn rates and the state
// of its burn-rate alert (ErrNoSLO when it is not configured).
func (api *API) SLODetail(ctx context.Context, name string) (client.SLODetail, error) {
	var (
		st    slo.Status
		found bool
	)
	if api.slos != nil {
		for _, s := range api.slos.Statuses() {
			if s.Name == name {
				st, found = s, true
			}
		}
	}
	if !found {
		return client.SLODetail{}, ErrNoSLO
	}
	d := client.SLODetail{SLO: sloView(st), Labels: st.Labels, BurnRates: []client.BurnRate{}}
	if st.SLI != nil {
		d.SLI = &client.SLIQueries{ErrorQuery: st.SLI.ErrorQuery, TotalQuery: st.SLI.TotalQuery}
	}
	if br, ok := api.slos.(SLOBurnRates); ok {
		rates, err := br.BurnRates(ctx, st.SLO, time.Now())
		if err != nil {
			return client.SLODetail{}, err
		}
		for _, b := range rates {
			v := client.BurnRate{LongWindow: model.Duration(b.Long).String(), ShortWindow: model.Duration(b.Short).String(),
				BudgetShare: b.Budget, Threshold: b.Threshold, Exceeded: b.Exceeded()}
			if b.LongKnown {
				v.Long = &b.LongRate
			}
			if b.ShortKnown {
				v.Short = &b.ShortRate
			}
			d.BurnRates = append(d.BurnRates, v)
		}
	}
	d.Alert = client.SLOAlert{Alertname: slo.BurnAlert, State: "not_loaded"}
	if api.rules != nil {
		if ai := slo.Alert(api.rules.Groups(), name); ai.Loaded {
			d.Alert = client.SLOAlert{Alertname: slo.BurnAlert, State: ai.State, ActiveAt: utcOrZero(ai.ActiveAt),
				Health: ai.Health, LastError: ai.LastError, LastEvaluation: utcOrZero(ai.LastEvaluation)}
		}
	}
	return d, nil
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

func (api *API) handleSLOs(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"slos": api.SLOViews()})
}

func (api *API) handleSLO(w http.ResponseWriter, r *http.Request) {
	d, err := api.SLODetail(r.Context(), r.PathValue("name"))
	switch {
	case errors.Is(err, ErrNoSLO):
		httpx.WriteError(w, http.StatusNotFound, "no SLO named "+r.PathValue("name"))
	case err != nil:
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
	default:
		httpx.WriteJSON(w, http.StatusOK, d)
	}
}
