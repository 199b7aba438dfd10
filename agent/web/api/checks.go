package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/agent/web/httpx"
	"github.com/vigil-project/vigil/probes"
	"gopkg.in/yaml.v3"
)

// HistoryLimit is how many past runs /api/v1/checks shows per check.
const HistoryLimit = 20

func (api *API) handleReload(w http.ResponseWriter, r *http.Request) {
	if err := api.reload(r.Context()); err != nil {
		api.log.Error("reload failed; keeping the running config", "err", err)
		httpx.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
}

// checkViews returns the views of every check, or of the one named only.
// withConfig renders each check's config section too (the API shows it,
// the status page does not: rendering it through YAML was a third of a
// page's allocations).
func (api *API) CheckViews(ctx context.Context, limit int, only string, withConfig bool) ([]client.CheckView, error) {
	var views []client.CheckView
	for _, c := range api.state.Checks() {
		if only != "" && c.Name != only {
			continue
		}
		v := newCheckView(c)
		if withConfig {
			v.Config = specMap(c.Spec)
		}
		if r, ok := api.state.Last(c.Name); ok {
			rv := client.NewResultView(r)
			v.LastResult = &rv
		}
		views = append(views, v)
	}
	for i := range views {
		hist, err := api.store.Summaries(ctx, views[i].Name, limit)
		if err != nil {
			return nil, err
		}
		for _, rec := range hist {
			views[i].History = append(views[i].History, client.HistoryEntry{
				Start:           rec.Start.UTC(),
				Success:         rec.Success,
				Reason:          rec.Reason,
				Message:         rec.Message,
				DurationSeconds: rec.Duration.Seconds(),
			})
		}
	}
	sort.Slice(views, func(i, j int) bool { return views[i].Name < views[j].Name })
	return views, nil
}

func (api *API) handleChecks(w http.ResponseWriter, r *http.Request) {
	views, err := api.CheckViews(r.Context(), HistoryLimit, "", true)
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if views == nil {
		views = []client.CheckView{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"checks": views})
}

func (api *API) handleCheck(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			httpx.WriteError(w, http.StatusBadRequest, "limit must be an integer between 1 and 10000")
			return
		}
		limit = n
	}
	views, err := api.CheckViews(r.Context(), limit, r.PathValue("name"), true)
	switch {
	case err != nil:
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
	case len(views) == 0:
		httpx.WriteError(w, http.StatusNotFound, "no check named "+strconv.Quote(r.PathValue("name")))
	default:
		httpx.WriteJSON(w, http.StatusOK, views[0])
	}
}

func (api *API) handleRun(w http.ResponseWriter, r *http.Request) {
	// Bound the wait: a run-now queues behind an in-flight run of the check.
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	res, err := api.sched.RunNow(ctx, r.PathValue("name"))
	switch {
	case errors.Is(err, scheduler.ErrUnknownCheck):
		httpx.WriteError(w, http.StatusNotFound, err.Error())
	case err != nil:
		httpx.WriteError(w, http.StatusServiceUnavailable, err.Error())
	default:
		httpx.WriteJSON(w, http.StatusOK, client.NewResultView(res))
	}
}

func newCheckView(c config.Check) client.CheckView {
	return client.CheckView{
		Name:            c.Name,
		Type:            c.Type,
		Interval:        c.Interval.String(),
		Timeout:         c.Timeout.String(),
		RecheckInterval: c.RecheckInterval.String(),
		Labels:          c.Labels,
		History:         []client.HistoryEntry{},
	}
}

// specMap renders a family config through its yaml tags as a generic map.
func specMap(spec probes.Config) map[string]any {
	out := map[string]any{}
	b, err := yaml.Marshal(spec)
	if err == nil {
		err = yaml.Unmarshal(b, &out)
	}
	if err != nil {
		return map[string]any{"error": fmt.Sprintf("cannot render config: %v", err)}
	}
	return out
}
