package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/vigil-project/vigil/agent/scheduler"
)

// historyLimit is how many past runs /api/v1/checks shows per check.
const historyLimit = 20

// Handler returns the agent's HTTP routes behind the security layer.
func (a *Agent) Handler() http.Handler {
	return a.secure(a.router().mux)
}

// router builds the route table: every route with its access level.
func (a *Agent) router() *router {
	rt := &router{a: a, mux: http.NewServeMux()}
	rt.read("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		a.exporter.WritePrometheus(w)
	})
	rt.open("GET /-/healthy", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("Healthy\n"))
	})
	rt.open("GET /-/ready", func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "Not ready", http.StatusServiceUnavailable)
			return
		}
		// A store that cannot be written loses history, alert state and
		// the durability of pages: an orchestrator should know, though
		// the agent keeps checking and paging from memory.
		if err := a.store.WriteHealth(); err != nil {
			http.Error(w, "Not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("Ready\n"))
	})
	rt.write("POST /-/reload", a.handleReload)
	rt.read("GET /api/v1/checks", a.handleChecks)
	rt.read("GET /api/v1/checks/{name}", a.handleCheck)
	rt.write("POST /api/v1/checks/{name}/run", a.handleRun)
	a.promRoutes(rt)
	a.notifyRoutes(rt)
	a.runbookRoutes(rt)
	a.drillRoutes(rt)
	a.uiRoutes(rt)
	return rt
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (a *Agent) handleReload(w http.ResponseWriter, r *http.Request) {
	if err := a.Reload(r.Context()); err != nil {
		a.log.Error("reload failed; keeping the running config", "err", err)
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
}

// checkViews returns the views of every check, or of the one named only.
// withConfig renders each check's config section too (the API shows it,
// the status page does not: rendering it through YAML was a third of a
// page's allocations).
func (a *Agent) checkViews(ctx context.Context, limit int, only string, withConfig bool) ([]CheckView, error) {
	var views []CheckView
	for _, c := range a.state.Checks() {
		if only != "" && c.Name != only {
			continue
		}
		v := newCheckView(c)
		if withConfig {
			v.Config = specMap(c.Spec)
		}
		if r, ok := a.state.Last(c.Name); ok {
			rv := NewResultView(r)
			v.LastResult = &rv
		}
		views = append(views, v)
	}
	for i := range views {
		hist, err := a.store.Summaries(ctx, views[i].Name, limit)
		if err != nil {
			return nil, err
		}
		for _, rec := range hist {
			views[i].History = append(views[i].History, HistoryEntry{
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

func (a *Agent) handleChecks(w http.ResponseWriter, r *http.Request) {
	views, err := a.checkViews(r.Context(), historyLimit, "", true)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		return
	}
	if views == nil {
		views = []CheckView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"checks": views})
}

func (a *Agent) handleCheck(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			writeJSON(w, http.StatusBadRequest, apiError{"limit must be an integer between 1 and 10000"})
			return
		}
		limit = n
	}
	views, err := a.checkViews(r.Context(), limit, r.PathValue("name"), true)
	switch {
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
	case len(views) == 0:
		writeJSON(w, http.StatusNotFound, apiError{"no check named " + strconv.Quote(r.PathValue("name"))})
	default:
		writeJSON(w, http.StatusOK, views[0])
	}
}

func (a *Agent) handleRun(w http.ResponseWriter, r *http.Request) {
	// Bound the wait: a run-now queues behind an in-flight run of the check.
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	res, err := a.sched.RunNow(ctx, r.PathValue("name"))
	switch {
	case errors.Is(err, scheduler.ErrUnknownCheck):
		writeJSON(w, http.StatusNotFound, apiError{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, apiError{err.Error()})
	default:
		writeJSON(w, http.StatusOK, NewResultView(res))
	}
}
