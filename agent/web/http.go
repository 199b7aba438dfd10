package web

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
	"github.com/vigil-project/vigil/agent/web/promapi"
	"github.com/vigil-project/vigil/probes"
	"gopkg.in/yaml.v3"
)

// historyLimit is how many past runs /api/v1/checks shows per check.
const historyLimit = 20

// Handler returns the agent's HTTP routes behind the security layer.
func (srv *Server) Handler() http.Handler {
	return srv.secure(srv.router().mux)
}

// router builds the route table: every route with its access level.
func (srv *Server) router() *router {
	rt := &router{srv: srv, mux: http.NewServeMux()}
	rt.Read("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		srv.exporter.WritePrometheus(w)
	})
	rt.Open("GET /-/healthy", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("Healthy\n"))
	})
	rt.Open("GET /-/ready", func(w http.ResponseWriter, r *http.Request) {
		if !srv.ready.Load() {
			http.Error(w, "Not ready", http.StatusServiceUnavailable)
			return
		}
		// A store that cannot be written loses history, alert state and
		// the durability of pages: an orchestrator should know, though
		// the agent keeps checking and paging from memory.
		if err := srv.store.WriteHealth(); err != nil {
			http.Error(w, "Not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("Ready\n"))
	})
	rt.Write("POST /-/reload", srv.handleReload)
	rt.Read("GET /api/v1/checks", srv.handleChecks)
	rt.Read("GET /api/v1/checks/{name}", srv.handleCheck)
	rt.Write("POST /api/v1/checks/{name}/run", srv.handleRun)
	promapi.New(srv.rules).Routes(rt)
	srv.notifyRoutes(rt)
	srv.runbookRoutes(rt)
	srv.drillRoutes(rt)
	srv.uiRoutes(rt)
	return rt
}

func (srv *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	if err := srv.opts.Reload(r.Context()); err != nil {
		srv.log.Error("reload failed; keeping the running config", "err", err)
		httpx.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
}

// checkViews returns the views of every check, or of the one named only.
// withConfig renders each check's config section too (the API shows it,
// the status page does not: rendering it through YAML was a third of a
// page's allocations).
func (srv *Server) checkViews(ctx context.Context, limit int, only string, withConfig bool) ([]client.CheckView, error) {
	var views []client.CheckView
	for _, c := range srv.state.Checks() {
		if only != "" && c.Name != only {
			continue
		}
		v := newCheckView(c)
		if withConfig {
			v.Config = specMap(c.Spec)
		}
		if r, ok := srv.state.Last(c.Name); ok {
			rv := client.NewResultView(r)
			v.LastResult = &rv
		}
		views = append(views, v)
	}
	for i := range views {
		hist, err := srv.store.Summaries(ctx, views[i].Name, limit)
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

func (srv *Server) handleChecks(w http.ResponseWriter, r *http.Request) {
	views, err := srv.checkViews(r.Context(), historyLimit, "", true)
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if views == nil {
		views = []client.CheckView{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"checks": views})
}

func (srv *Server) handleCheck(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			httpx.WriteError(w, http.StatusBadRequest, "limit must be an integer between 1 and 10000")
			return
		}
		limit = n
	}
	views, err := srv.checkViews(r.Context(), limit, r.PathValue("name"), true)
	switch {
	case err != nil:
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
	case len(views) == 0:
		httpx.WriteError(w, http.StatusNotFound, "no check named "+strconv.Quote(r.PathValue("name")))
	default:
		httpx.WriteJSON(w, http.StatusOK, views[0])
	}
}

func (srv *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	// Bound the wait: a run-now queues behind an in-flight run of the check.
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	res, err := srv.sched.RunNow(ctx, r.PathValue("name"))
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
