package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/agent/web/httpx"
)

func (api *API) runbookRoutes(rt httpx.Router) {
	rt.Read("GET /api/v1/runbooks", api.handleRunbooks)
	rt.Read("GET /api/v1/runbooks/runs", api.handleRuns)
	rt.Read("GET /api/v1/runbooks/runs/{id}", api.handleRun1)
	rt.Write("POST /api/v1/runbooks/{name}/trigger", api.handleTrigger)
	rt.Write("POST /api/v1/runbooks/{name}/ack", api.handleAck)
	rt.Write("POST /api/v1/runbooks/runs/{id}/approve", api.handleApprove(true))
	rt.Write("POST /api/v1/runbooks/runs/{id}/reject", api.handleApprove(false))
	rt.Write("POST /api/v1/runbooks/runs/{id}/abort", api.handleAbort)
	rt.Write("POST /api/v1/runbooks/pause", api.handlePause(true))
	rt.Write("POST /api/v1/runbooks/resume", api.handlePause(false))
}

func ViewRun(r store.RunRow, evs []store.RunEvent) client.Run {
	v := client.Run{ID: r.ID, Runbook: r.Runbook, Target: r.Target, Trigger: r.Trigger, Mode: r.Mode, State: r.State, Error: r.Error,
		Fencing: r.Fencing, CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt}
	json.Unmarshal([]byte(r.Labels), &v.Labels)
	for _, e := range evs {
		ev := client.Event{At: e.At, Kind: e.Kind, Phase: e.Phase, Name: e.Name, Attempt: e.Attempt, Error: e.Error, TookMS: e.Took.Milliseconds()}
		if e.Step >= 0 && e.Phase != "" {
			s := e.Step
			ev.Step = &s
		}
		if json.Valid([]byte(e.Detail)) {
			ev.Detail = json.RawMessage(e.Detail)
		} else if e.Detail != "" {
			ev.Detail, _ = json.Marshal(e.Detail)
		}
		v.Timeline = append(v.Timeline, ev)
	}
	return v
}

func (api *API) handleRunbooks(w http.ResponseWriter, r *http.Request) {
	paused, by, err := api.runbooks.State().Paused(r.Context())
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"paused": paused, "pausedBy": by, "runbooks": api.runbooks.Runbooks()})
}

func (api *API) handleRuns(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && n <= 1000 {
		limit = n
	}
	var states []string
	if s := r.URL.Query().Get("state"); s != "" {
		states = []string{s}
	}
	runs, err := api.store.Runs(r.Context(), limit, states...)
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]client.Run, 0, len(runs))
	for _, run := range runs {
		out = append(out, ViewRun(run, nil))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"runs": out})
}

func (api *API) handleRun1(w http.ResponseWriter, r *http.Request) {
	run, evs, err := api.store.Run(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNoRun):
		httpx.WriteError(w, http.StatusNotFound, err.Error())
	case err != nil:
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
	default:
		httpx.WriteJSON(w, http.StatusOK, ViewRun(run, evs))
	}
}

func readAction(w http.ResponseWriter, r *http.Request) (client.ActionRequest, bool) {
	var req client.ActionRequest
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if len(body) > 0 {
		dec := json.NewDecoder(bytesReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			httpx.WriteError(w, http.StatusBadRequest, "bad request: "+err.Error())
			return req, false
		}
	}
	req.By = withUser(r, req.By)
	if req.By == "" {
		httpx.WriteError(w, http.StatusBadRequest, `say who you are: {"by": "name"}`)
		return req, false
	}
	return req, true
}

// withUser is the "by" recorded for a call: the authenticated user wins
// over the name in the body, which is kept beside it when it differs.
func withUser(r *http.Request, by string) string {
	user := httpx.User(r.Context())
	switch {
	case user == "" || by == user:
		return by
	case by == "":
		return user
	default:
		return user + " (as " + by + ")"
	}
}

func (api *API) handleTrigger(w http.ResponseWriter, r *http.Request) {
	req, ok := readAction(w, r)
	if !ok {
		return
	}
	mode := runbook.Mode(req.Mode)
	switch mode {
	case "", runbook.Enforce, runbook.Approve, runbook.DryRun:
	default:
		httpx.WriteError(w, http.StatusBadRequest, "mode must be enforce, approve or dry_run")
		return
	}
	id, err := api.runbooks.Trigger(r.Context(), r.PathValue("name"), req.Labels, nil, "manual by "+req.By, mode)
	switch {
	case errors.Is(err, runbook.ErrUnknownRunbook):
		httpx.WriteError(w, http.StatusNotFound, err.Error())
	case err != nil:
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
	default:
		run, _, _ := api.store.Run(r.Context(), id)
		httpx.WriteJSON(w, http.StatusOK, ViewRun(run, nil))
	}
}

func (api *API) handleAck(w http.ResponseWriter, r *http.Request) {
	req, ok := readAction(w, r)
	if !ok {
		return
	}
	err := api.runbooks.Ack(r.Context(), r.PathValue("name"), req.Target, req.By)
	switch {
	case errors.Is(err, runbook.ErrUnknownRunbook):
		httpx.WriteError(w, http.StatusNotFound, err.Error())
	case err != nil:
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
	default:
		api.log.Info("runbook cooldown acknowledged", "runbook", r.PathValue("name"), "target", req.Target, "by", req.By)
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "acknowledged"})
	}
}

func (api *API) handleApprove(ok bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, valid := readAction(w, r)
		if !valid {
			return
		}
		if err := api.runbooks.Approve(r.PathValue("id"), req.By, ok); err != nil {
			httpx.WriteError(w, http.StatusConflict, err.Error())
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "approved": ok})
	}
}

func (api *API) handleAbort(w http.ResponseWriter, r *http.Request) {
	req, ok := readAction(w, r)
	if !ok {
		return
	}
	if err := api.runbooks.Abort(r.Context(), r.PathValue("id"), req.By); err != nil {
		httpx.WriteError(w, http.StatusConflict, err.Error())
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id"), "status": "aborting"})
}

func (api *API) handlePause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, ok := readAction(w, r)
		if !ok {
			return
		}
		if err := api.runbooks.Pause(r.Context(), paused, req.By); err != nil {
			httpx.WriteError(w, http.StatusInternalServerError, err.Error())
			return
		}
		api.log.Warn("runbooks paused state changed", "paused", paused, "by", req.By)
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"paused": paused, "by": req.By})
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
