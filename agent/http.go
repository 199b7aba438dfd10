package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/vigil-project/vigil/agent/scheduler"
)

// historyLimit is how many past runs /api/v1/checks shows per check.
const historyLimit = 20

// Handler returns the agent's HTTP routes.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "vigil",
		Description: "Health-probe and observability agent: host, database, invoice, network and log checks",
		Version:     version.Info(),
		Links: []web.LandingLinks{
			{Address: "/metrics", Text: "Metrics"},
			{Address: "/api/v1/checks", Text: "Checks (JSON)"},
			{Address: "/-/healthy", Text: "Health"},
			{Address: "/-/ready", Text: "Readiness"},
		},
	})
	if err != nil {
		// The landing page is built from constants; failing here is a bug.
		panic(err)
	}
	mux.Handle("GET /{$}", landing)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		a.exporter.WritePrometheus(w)
	})
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("Healthy\n"))
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "Not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("Ready\n"))
	})
	mux.Handle("POST /-/reload", loopbackOnly(http.HandlerFunc(a.handleReload)))
	mux.HandleFunc("GET /api/v1/checks", a.handleChecks)
	mux.HandleFunc("GET /api/v1/checks/{name}", a.handleCheck)
	mux.Handle("POST /api/v1/checks/{name}/run", loopbackOnly(http.HandlerFunc(a.handleRun)))
	a.promRoutes(mux)
	a.notifyRoutes(mux)
	a.runbookRoutes(mux)
	a.drillRoutes(mux)
	return mux
}

// loopbackOnly refuses state-changing calls from other hosts until the
// API has authentication of its own.
func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !ip.IsLoopback() {
			writeJSON(w, http.StatusForbidden, apiError{"this endpoint only accepts requests from localhost"})
			return
		}
		next.ServeHTTP(w, r)
	})
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
func (a *Agent) checkViews(ctx context.Context, limit int, only string) ([]CheckView, error) {
	a.mu.RLock()
	var views []CheckView
	for _, c := range a.cfg.Checks {
		if only != "" && c.Name != only {
			continue
		}
		v := newCheckView(c)
		if r, ok := a.last[c.Name]; ok {
			rv := NewResultView(r)
			v.LastResult = &rv
		}
		views = append(views, v)
	}
	a.mu.RUnlock()
	for i := range views {
		hist, err := a.store.History(ctx, views[i].Name, limit)
		if err != nil {
			return nil, err
		}
		for _, rec := range hist {
			views[i].History = append(views[i].History, HistoryEntry{
				Start:           rec.Result.Start.UTC(),
				Success:         rec.Result.Success,
				Reason:          string(rec.Result.Reason),
				Message:         rec.Result.Message,
				DurationSeconds: rec.Result.Duration.Seconds(),
			})
		}
	}
	sort.Slice(views, func(i, j int) bool { return views[i].Name < views[j].Name })
	return views, nil
}

func (a *Agent) handleChecks(w http.ResponseWriter, r *http.Request) {
	views, err := a.checkViews(r.Context(), historyLimit, "")
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
	views, err := a.checkViews(r.Context(), limit, r.PathValue("name"))
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
