package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/agent/uptime"
	"github.com/vigil-project/vigil/agent/web/httpx"
	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
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
		views = append(views, api.view(c, withConfig))
	}
	sort.Slice(views, func(i, j int) bool { return views[i].Name < views[j].Name })
	if err := api.withHistory(ctx, views, limit); err != nil {
		return nil, err
	}
	if only != "" && len(views) == 1 {
		// One check: its uptime as of now, not the minute-old cache.
		counts, err := api.store.CheckUptime(ctx, only, time.Now(), uptime.Windows[:])
		if err != nil {
			return nil, err
		}
		views[0].Uptime = uptimeViews(counts)
	}
	return views, nil
}

// uptimeViews are the API's form of counts per uptime.Windows.
func uptimeViews(counts []store.Counts) []client.Uptime {
	out := make([]client.Uptime, len(counts))
	for i, c := range counts {
		out[i] = client.Uptime{Window: uptime.WindowNames[i], Runs: c.Runs, OK: c.OK}
		if r, ok := c.Ratio(); ok {
			out[i].Ratio = &r
		}
	}
	return out
}

// Brief is what the overview needs of every check to group, count and
// fold them. At 10,000 checks building every check's full view for a page
// that shows a few dozen allocated ~10 MB per page view.
type Brief struct {
	Name string
	// Step is the checklist item of the check's type ("" for a type no
	// family registered).
	Step probes.Step
	// Ran: there is a last result; Success is its outcome.
	Ran, Success bool
}

// Briefs are every check's briefs, sorted by name.
func (api *API) Briefs() []Brief {
	checks := api.state.Checks()
	out := make([]Brief, 0, len(checks))
	for _, c := range checks {
		b := Brief{Name: c.Name}
		if f, ok := probes.Lookup(c.Type); ok {
			b.Step = f.Step
		}
		b.Ran, b.Success = api.state.Outcome(c.Name)
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Views are the views of the named checks (in that order, without history
// or config); names no longer configured are left out.
func (api *API) Views(names []string) []client.CheckView {
	out := make([]client.CheckView, 0, len(names))
	for _, n := range names {
		if c := api.state.Check(n); c.Name != "" {
			out = append(out, api.view(c, false))
		}
	}
	return out
}

// view is a check's view without its history.
func (api *API) view(c config.Check, withConfig bool) client.CheckView {
	v := newCheckView(c)
	if withConfig {
		v.Config = api.spec(c.Spec)
	}
	if r, ok := api.state.Last(c.Name); ok {
		rv := client.NewResultView(r)
		v.LastResult = &rv
	}
	if api.uptime != nil {
		u := api.uptime.Get(c.Name)
		v.Uptime = uptimeViews(u[:])
	}
	if nr, ok := api.sched.(NextRuns); ok {
		if next, ok := nr.NextRun(c.Name); ok && !next.IsZero() {
			v.NextRun = next.UTC()
		}
	}
	return v
}

// WithHistory reads up to limit past runs of each view from the store.
func (api *API) WithHistory(ctx context.Context, views []client.CheckView, limit int) error {
	return api.withHistory(ctx, views, limit)
}

// withHistory reads up to limit past runs of each view from the store.
func (api *API) withHistory(ctx context.Context, views []client.CheckView, limit int) error {
	if limit <= 0 {
		return nil
	}
	names := make([]string, len(views))
	for i := range views {
		names[i] = views[i].Name
	}
	hists, err := api.store.SummariesOf(ctx, names, limit)
	if err != nil {
		return err
	}
	for i := range views {
		for _, rec := range hists[views[i].Name] {
			views[i].History = append(views[i].History, client.HistoryEntry{
				Start:           rec.Start.UTC(),
				Success:         rec.Success,
				Reason:          rec.Reason,
				Message:         rec.Message,
				DurationSeconds: rec.Duration.Seconds(),
			})
		}
	}
	return nil
}

// Paging of /api/v1/checks: at 10,000 checks a full answer is megabytes
// and one history query per check; a page reads only its own.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// checkFilter selects checks by the query's step, type, status (passing,
// failing, unknown), label (name=value, all must hold) and name
// (substring).
type checkFilter struct {
	step, typ, status, name string
	labels                  map[string]string
}

func parseCheckFilter(q url.Values) (checkFilter, error) {
	f := checkFilter{step: q.Get("step"), typ: q.Get("type"), status: q.Get("status"), name: q.Get("name"), labels: map[string]string{}}
	switch f.status {
	case "", "passing", "failing", "unknown":
	default:
		return f, fmt.Errorf("status must be passing, failing or unknown, got %q", f.status)
	}
	for _, l := range q["label"] {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return f, fmt.Errorf("label must be name=value, got %q", l)
		}
		f.labels[k] = v
	}
	return f, nil
}

func (f checkFilter) keep(c *config.Check, ran, success bool) bool {
	if f.typ != "" && c.Type != f.typ || f.name != "" && !strings.Contains(c.Name, f.name) {
		return false
	}
	if f.step != "" {
		fam, ok := probes.Lookup(c.Type)
		if !ok || string(fam.Step) != f.step {
			return false
		}
	}
	switch f.status {
	case "passing":
		if !ran || !success {
			return false
		}
	case "failing":
		if !ran || success {
			return false
		}
	case "unknown":
		if ran {
			return false
		}
	}
	for k, v := range f.labels {
		if c.Labels[k] != v {
			return false
		}
	}
	return true
}

// handleChecks answers one page of checks in name order, filtered:
// ?limit=N (default 100, at most 1000) &offset=M &history=H (runs per
// check, default 20) &step= &type= &status= &label=k=v &name=substring.
func (api *API) handleChecks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err1 := intParam(q, "limit", defaultPageSize, 1, maxPageSize)
	offset, err2 := intParam(q, "offset", 0, 0, 1<<31)
	history, err3 := intParam(q, "history", HistoryLimit, 0, 1000)
	f, err4 := parseCheckFilter(q)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Pointers into the config: a check's config is hundreds of bytes,
	// and copying 10,000 of them per page was most of its garbage.
	var matched []*config.Check
	checks := api.state.Checks()
	for i := range checks {
		c := &checks[i]
		if ran, success := api.state.Outcome(c.Name); f.keep(c, ran, success) {
			matched = append(matched, c)
		}
	}
	sort.Slice(matched, func(i, j int) bool { return matched[i].Name < matched[j].Name })
	page := matched[min(offset, len(matched)):min(offset+limit, len(matched))]
	views := make([]client.CheckView, 0, len(page))
	for _, c := range page {
		views = append(views, api.view(*c, true))
	}
	if err := api.withHistory(r.Context(), views, history); err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := map[string]any{"checks": views, "total": len(matched), "offset": offset}
	if next := offset + len(page); next < len(matched) {
		out["next_offset"] = next
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// intParam reads an integer query parameter within [lo, hi].
func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s must be an integer between %d and %d", name, lo, hi)
	}
	return n, nil
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

// specCacheSize bounds the config sections kept: two of the largest pages.
// A section is ~1.5 KB, so caching every check's at 10,000 checks (someone
// paging through them all) would have kept 15 MB for good.
const specCacheSize = 2 * maxPageSize

// spec is specMap(c), cached: the cache is dropped when it is full (a
// reload brings new configs; a client pages through everything). Callers
// only read the map.
func (api *API) spec(c probes.Config) map[string]any {
	if reflect.ValueOf(c).Kind() != reflect.Pointer {
		return specMap(c) // not a usable key (and never expected: families return pointers)
	}
	api.specMu.Lock()
	defer api.specMu.Unlock()
	if m, ok := api.specs[c]; ok {
		return m
	}
	if api.specs == nil || len(api.specs) >= specCacheSize {
		api.specs = map[probes.Config]map[string]any{}
	}
	m := specMap(c)
	api.specs[c] = m
	return m
}

// specMap renders a family config through its yaml tags as a generic map:
// confkit.Plain, or for what it cannot follow, the YAML text read back.
func specMap(spec probes.Config) map[string]any {
	v, err := confkit.Plain(spec)
	if err != nil {
		v, err = confkit.PlainViaText(spec)
	}
	if err != nil {
		return map[string]any{"error": fmt.Sprintf("cannot render config: %v", err)}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return map[string]any{"error": fmt.Sprintf("cannot render config: %T is not a mapping", v)}
	}
	return m
}
