package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/drill"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/agent/web/httpx"
)

func (api *API) drillRoutes(rt httpx.Router) {
	rt.Read("GET /api/v1/drills", api.handleDrills)
	rt.Read("GET /api/v1/drills/runs", api.handleDrillRuns)
	rt.Read("GET /api/v1/drills/runs/{id}", api.handleDrillRun)
	rt.Read("GET /api/v1/drills/history", api.handleDrillHistory)
	rt.Write("POST /api/v1/drills/run", api.handleDrillStart)
	rt.Write("POST /api/v1/drills/runs/{id}/abort", api.handleDrillAbort)
}

// drillViews lists the loaded drills for the API and the status page.
func (api *API) DrillViews() []client.Drill {
	out := []client.Drill{}
	for _, d := range api.drills.List() {
		out = append(out, client.Drill{Name: d.Name, File: d.File, Hypothesis: d.Hypothesis, Checks: d.Checks,
			Duration: d.Duration.String(), Objectives: d.Objectives, Stop: d.StopConditions})
	}
	return out
}

func (api *API) handleDrills(w http.ResponseWriter, r *http.Request) {
	resp := map[string]any{"drills": api.DrillViews()}
	if run := api.drills.Current(); run != nil {
		resp["active"] = map[string]string{"id": run.ID, "drill": run.Drill.Name}
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
}

// drillReport is a run's report: live while it runs, stored after.
func (api *API) DrillReport(r *http.Request, row store.DrillRow) drill.Report {
	if run := api.drills.Current(); run != nil && run.ID == row.ID {
		return run.Report()
	}
	var rep drill.Report
	if json.Unmarshal([]byte(row.Report), &rep) != nil {
		rep = drill.Report{ID: row.ID, Drill: row.Drill, State: row.State, StartedAt: row.StartedAt}
	}
	return rep
}

func (api *API) handleDrillRuns(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.FormValue("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 50
	}
	rows, err := api.store.DrillRuns(r.Context(), r.FormValue("drill"), limit)
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []drill.Report{}
	for _, row := range rows {
		out = append(out, api.DrillReport(r, row))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"runs": out})
}

func (api *API) handleDrillRun(w http.ResponseWriter, r *http.Request) {
	row, err := api.store.DrillRun(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		httpx.WriteError(w, http.StatusNotFound, err.Error())
	case err != nil:
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
	case r.FormValue("format") == "markdown":
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		io.WriteString(w, api.DrillReport(r, row).Markdown())
	default:
		httpx.WriteJSON(w, http.StatusOK, api.DrillReport(r, row))
	}
}

func (api *API) handleDrillHistory(w http.ResponseWriter, r *http.Request) {
	rows, err := api.store.DrillRuns(r.Context(), r.FormValue("drill"), 1000, drill.StatePassed, drill.StateFailed)
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	var reps []drill.Report
	for _, row := range rows {
		reps = append(reps, api.DrillReport(r, row))
	}
	stats := drill.History(reps)
	if stats == nil {
		stats = []drill.Stats{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"drill": r.FormValue("drill"), "runs": len(reps), "measures": stats})
}

func (api *API) handleDrillStart(w http.ResponseWriter, r *http.Request) {
	var req client.DrillStartRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad request: "+err.Error())
		return
	}
	req.By = withUser(r, req.By)
	if req.By == "" {
		httpx.WriteError(w, http.StatusBadRequest, `say who you are: {"by": "name"}`)
		return
	}
	var d *drill.Drill
	switch {
	case req.Source != "":
		file := req.File
		if file == "" {
			file = "drill"
		}
		parsed, err := drill.Parse(file, []byte(req.Source))
		if err != nil {
			httpx.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		d = parsed
	case req.Name != "":
		if d = api.drills.ByName(req.Name); d == nil {
			httpx.WriteError(w, http.StatusNotFound, "no drill named "+strconv.Quote(req.Name)+" is loaded")
			return
		}
	default:
		httpx.WriteError(w, http.StatusBadRequest, "name a loaded drill or send a drill file's source")
		return
	}
	id, err := api.drills.Start(d, req.By)
	switch {
	case errors.Is(err, drill.ErrActive):
		httpx.WriteError(w, http.StatusConflict, err.Error())
	case err != nil:
		httpx.WriteError(w, http.StatusBadRequest, err.Error())
	default:
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "drill": d.Name, "started": time.Now()})
	}
}

func (api *API) handleDrillAbort(w http.ResponseWriter, r *http.Request) {
	req, ok := readAction(w, r)
	if !ok {
		return
	}
	if err := api.drills.Abort(r.PathValue("id"), req.By); err != nil {
		httpx.WriteError(w, http.StatusConflict, err.Error())
		return
	}
	api.log.Warn("drill aborted", "id", r.PathValue("id"), "by", req.By)
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id"), "status": "aborting: the rollback runs"})
}
