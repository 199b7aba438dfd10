package ui

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/drill"
	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/agent/web/api"
	"github.com/vigil-project/vigil/agent/web/httpx"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/rules"
)

// The status page: server-rendered views of the same data the API serves.
// Reads are accessRead; every form post is accessWrite and carries the
// form token (Options.CSRF) besides the web server's cross-origin check.

// CSRF makes and checks the token every form carries, bound to the user.
type CSRF interface {
	Token(user string) string
	Valid(user, token string) bool
}

// Rules lists the rule groups (the alerts page).
type Rules interface {
	Groups() []*rules.Group
}

// Trimmer is told when a burst of work (a page) is over.
type Trimmer interface{ BurstDone() }

// SiteOptions are what the pages read and the forms act on.
type SiteOptions struct {
	// API builds the views of checks, runs and drills.
	API       *api.API
	Scheduler api.Scheduler
	Paging    api.Paging
	Runbooks  api.Runbooks
	Drills    api.Drills
	Store     api.Store
	Rules     Rules
	Trimmer   Trimmer
	// Reload re-reads the agent's config.
	Reload func(ctx context.Context) error
	// PublicStatus serves /status without a user.
	PublicStatus bool
	// AuthEnabled reports whether the web config has users.
	AuthEnabled func() bool
	CSRF        CSRF
	// OnCSRFRefused counts a form post refused for its token.
	OnCSRFRefused func()
	Logger        *slog.Logger
}

// Site is the status page: its pages and forms.
type Site struct {
	opts  SiteOptions
	pages *Pages
}

// NewSite builds the status page.
func NewSite(opts SiteOptions) *Site {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Site{opts: opts, pages: New()}
}

// sparkRuns is how many past runs the overview's sparklines show.
const sparkRuns = 30

// Routes registers the pages (read) and the forms (write).
func (site *Site) Routes(rt httpx.Router) {
	rt.Read("GET /{$}", site.pageOverview)
	rt.Read("GET /checks/{name}", site.pageCheck)
	rt.Read("GET /alerts", site.pageAlerts)
	rt.Read("GET /slos/{name}", site.pageSLO)
	if site.opts.PublicStatus {
		rt.Open("GET /status", site.pageStatus)
	} else {
		rt.Read("GET /status", site.pageStatus)
	}
	rt.Read("GET /incidents", site.pageIncidents)
	rt.Read("GET /incidents/{id}", site.pageIncident)
	rt.Read("GET /runbooks", site.pageRunbooks)
	rt.Read("GET /runbooks/runs/{id}", site.pageRun)
	rt.Read("GET /drills", site.pageDrills)
	rt.Read("GET /drills/runs/{id}", site.pageDrill)
	rt.Read("GET /static/", Static().ServeHTTP)
	// Asks the browser for credentials (basic auth), then goes back.
	rt.Write("GET /login", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, safeNext(r.FormValue("next")), http.StatusSeeOther)
	})
	rt.Write("POST /ui/reload", site.formReload)
	rt.Write("POST /ui/checks/{name}/run", site.formRunCheck)
	rt.Write("POST /ui/silences", site.formAddSilence)
	rt.Write("POST /ui/silences/{id}/expire", site.formExpireSilence)
	rt.Write("POST /ui/runbooks/runs/{id}/{action}", site.formRunAction)
	rt.Write("POST /ui/drills/run", site.formDrillRun)
	rt.Write("POST /ui/drills/runs/{id}/abort", site.formDrillAbort)
}

// page fills the parts every page shares.
func (site *Site) page(w http.ResponseWriter, r *http.Request, nav, title string, data any) Page {
	lang := Lang(w, r)
	user := httpx.User(r.Context())
	q := r.URL.Query()
	q.Del("lang")
	q.Del("flash")
	path := r.URL.Path
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	flash := r.URL.Query().Get("flash")
	if flash != "" {
		flash = T(lang, "flash."+flash)
	}
	return Page{Lang: lang, Title: title, Nav: nav, User: user, AuthEnabled: site.opts.AuthEnabled(), CSRF: site.opts.CSRF.Token(user),
		Path: path, Flash: flash, Now: time.Now(), Zone: site.opts.API.Zone(), Data: data}
}

func (site *Site) render(w http.ResponseWriter, r *http.Request, status int, name string, p Page) {
	if err := site.pages.Render(w, status, name, p); err != nil {
		site.opts.Logger.Error("status page", "page", name, "err", err)
		http.Error(w, "cannot render page", http.StatusInternalServerError)
	}
	// A page is a burst of short-lived allocations (store rows, the
	// rendered HTML); hand the heap back soon after, check runs or not.
	site.opts.Trimmer.BurstDone()
}

func (site *Site) pageError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	p := site.page(w, r, "", http.StatusText(status), map[string]any{"Status": status, "Message": msg})
	site.render(w, r, status, "error", p)
}

// uiCheck is a check as the overview and the detail page show it.
type uiCheck struct {
	client.CheckView
	Step   probes.Step
	Points []Point
	// Alerts counts this check's firing alerts.
	Alerts int
}

// uiStep is one item of the checklist with its checks.
type uiStep struct {
	Step    probes.Step
	Checks  []uiCheck
	Failing int
	// Folded counts the passing checks folded into one line (a step with
	// more than foldPassing of them); FoldNames are the first of them by
	// name, FoldRest how many more the line does not list.
	Folded    int
	FoldNames []string
	FoldRest  int
	// Hidden counts the checks that would have been rows but for the
	// page's row limit; HiddenAt is the API page that lists them all.
	Hidden   int
	HiddenAt string
}

// overviewLimits bound one overview, so that at 10,000 checks — or with
// all of them failing in an outage, when everyone opens the page — it
// stays a page of tens of kilobytes, not megabytes: a step folds its
// passing checks beyond foldPassing into one line listing foldNames of
// them, the page shows at most rows check rows, and sparklines are read
// for at most sparks of them (one history query per check shown). The
// rest are a name search or a page of /api/v1/checks away.
type overviewLimits struct {
	foldPassing, foldNames, rows, sparks int
}

var pageLimits = overviewLimits{foldPassing: 20, foldNames: 200, rows: 500, sparks: 200}

type overviewData struct {
	SLOs        []client.SLO
	Steps       []uiStep
	Total       int
	Failing     int
	Firing      int
	Pending     int
	Approvals   int
	ActiveDrill string
	Paused      bool
	// Maintenance are the maintenance windows holding now.
	Maintenance []route.Window
	// Query is the name search (?q=); Matched how many checks it found.
	Query   string
	Matched int
	sparked int // checks given sparklines so far
}

// overviewStep picks step s's checks (briefs are every matching check in
// name order) for the overview: rows for all of them when searching or
// when at most lim.foldPassing pass, otherwise rows for the failing and
// not yet run ones and the passing ones folded. At most rowsLeft names
// become rows; the rest are counted in Hidden.
func overviewStep(s probes.Step, briefs []api.Brief, search bool, lim overviewLimits, rowsLeft int) (uiStep, []string) {
	st := uiStep{Step: s}
	passing := 0
	for _, b := range briefs {
		switch {
		case b.Step != s:
		case b.Ran && b.Success:
			passing++
		case b.Ran:
			st.Failing++
		}
	}
	fold := !search && passing > lim.foldPassing
	var rows []string
	for _, b := range briefs {
		switch {
		case b.Step != s:
		case fold && b.Ran && b.Success:
			st.Folded++
			if len(st.FoldNames) < lim.foldNames {
				st.FoldNames = append(st.FoldNames, b.Name)
			}
		case len(rows) < rowsLeft:
			rows = append(rows, b.Name)
		default:
			st.Hidden++
		}
	}
	st.FoldRest = st.Folded - len(st.FoldNames)
	return st, rows
}

func newUICheck(v client.CheckView) uiCheck {
	c := uiCheck{CheckView: v}
	if f, ok := probes.Lookup(v.Type); ok {
		c.Step = f.Step
	}
	// History is newest first; sparklines read left to right.
	for i := len(v.History) - 1; i >= 0; i-- {
		h := v.History[i]
		c.Points = append(c.Points, Point{Seconds: h.DurationSeconds, OK: h.Success})
	}
	return c
}

func (site *Site) pageOverview(w http.ResponseWriter, r *http.Request) {
	all := site.opts.API.Briefs()
	d := overviewData{Total: len(all), Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	briefs := all
	if d.Query != "" {
		briefs = nil
		for _, b := range all {
			if strings.Contains(b.Name, d.Query) {
				briefs = append(briefs, b)
			}
		}
		d.Matched = len(briefs)
	}
	alerts := site.uiAlerts(time.Now())
	firingBy := map[string]int{}
	for _, al := range alerts {
		switch {
		case len(al.SilencedBy) > 0, len(al.Maintenance) > 0, al.DependencyFailed != "":
			// Someone already knows, or it is planned; the tiles count what
			// needs attention.
		case al.State == "firing":
			d.Firing++
			firingBy[al.Labels["check"]]++
		case al.State == "pending":
			d.Pending++
		}
	}
	rowsLeft := pageLimits.rows
	for _, s := range probes.Steps() {
		st, names := overviewStep(s, briefs, d.Query != "", pageLimits, rowsLeft)
		rowsLeft -= len(names)
		if st.Hidden > 0 {
			q := url.Values{"step": {string(s)}}
			if d.Query != "" {
				q.Set("name", d.Query)
			}
			st.HiddenAt = "/api/v1/checks?" + q.Encode()
		}
		shown := site.opts.API.Views(names)
		if err := site.opts.API.WithHistory(r.Context(), shown[:min(len(shown), max(0, pageLimits.sparks-d.sparked))], sparkRuns); err != nil {
			site.pageError(w, r, http.StatusInternalServerError, err.Error())
			return
		}
		d.sparked += len(shown)
		for _, v := range shown {
			c := newUICheck(v)
			c.Alerts = firingBy[v.Name]
			st.Checks = append(st.Checks, c)
		}
		d.Failing += st.Failing
		d.Steps = append(d.Steps, st)
	}
	if runs, err := site.opts.Store.Runs(r.Context(), 100, runbook.StateWaitingApproval); err == nil {
		d.Approvals = len(runs)
	}
	if d.Query == "" {
		d.SLOs = site.opts.API.SLOViews()
	}
	if run := site.opts.Drills.Current(); run != nil {
		d.ActiveDrill = run.Drill.Name
	}
	d.Paused, _, _ = site.opts.Runbooks.State().Paused(r.Context())
	for _, mw := range site.opts.Paging.Maintenance(time.Now()) {
		if mw.Active {
			d.Maintenance = append(d.Maintenance, mw)
		}
	}
	site.render(w, r, http.StatusOK, "overview", site.page(w, r, "overview", "", d))
}

type checkData struct {
	Check   uiCheck
	Reasons []reasonCount
	Hops    []map[string]any
	// DiagValues are the plain diagnostics (one key/value table, where
	// qr_decoded and qr_expected read one above the other), DiagBlocks
	// the structured ones (a table each), both by key.
	DiagValues, DiagBlocks []diagItem
}

type diagItem struct {
	Key   string
	Value any
}

type reasonCount struct {
	Reason string
	Count  int
	Last   time.Time
}

func (site *Site) pageCheck(w http.ResponseWriter, r *http.Request) {
	views, err := site.opts.API.CheckViews(r.Context(), 200, r.PathValue("name"), false)
	switch {
	case err != nil:
		site.pageError(w, r, http.StatusInternalServerError, err.Error())
		return
	case len(views) == 0:
		site.pageError(w, r, http.StatusNotFound, "no check named "+r.PathValue("name"))
		return
	}
	d := checkData{Check: newUICheck(views[0])}
	counts := map[string]*reasonCount{}
	for _, h := range views[0].History {
		if h.Success {
			continue
		}
		rc := counts[h.Reason]
		if rc == nil {
			rc = &reasonCount{Reason: h.Reason, Last: h.Start}
			counts[h.Reason] = rc
		}
		rc.Count++
	}
	for _, rc := range counts {
		d.Reasons = append(d.Reasons, *rc)
	}
	sort.Slice(d.Reasons, func(i, j int) bool { return d.Reasons[i].Count > d.Reasons[j].Count })
	if lr := views[0].LastResult; lr != nil && len(lr.Diagnostics) > 0 {
		// Diagnostics are JSON-shaped; the traceroute gets a table of its
		// own, the rest the generic tables (DiagHTML).
		keys := make([]string, 0, len(lr.Diagnostics))
		for k := range lr.Diagnostics {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := lr.Diagnostics[k]
			if k == "traceroute" {
				b, _ := json.Marshal(v)
				if json.Unmarshal(b, &d.Hops) == nil {
					continue
				}
			}
			if IsScalar(v) {
				d.DiagValues = append(d.DiagValues, diagItem{k, v})
			} else {
				d.DiagBlocks = append(d.DiagBlocks, diagItem{k, v})
			}
		}
	}
	site.render(w, r, http.StatusOK, "check", site.page(w, r, "overview", views[0].Name, d))
}

// uiAlert is an active alert with the silences that mute it.
type uiAlert struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	State       string
	ActiveAt    time.Time
	Value       float64
	SilencedBy  []string
	// Maintenance names the maintenance windows that keep it from paging
	// now.
	Maintenance []string
	// DependencyFailed is the failing check its check depends on, which
	// holds it back (depends_on).
	DependencyFailed string
	// SilenceLink prefills the silence form with the alert's identity.
	SilenceLink string
}

func (site *Site) uiAlerts(now time.Time) []uiAlert {
	var out []uiAlert
	for _, g := range site.opts.Rules.Groups() {
		for _, rl := range g.Rules {
			ar, ok := rl.(*rules.AlertingRule)
			if !ok {
				continue
			}
			for _, al := range ar.Alerts() {
				if al.State == rules.StateInactive {
					continue
				}
				v := uiAlert{Name: al.Labels.Get("alertname"), Labels: al.Labels.Map(), Annotations: al.Annotations.Map(),
					State: al.State.String(), ActiveAt: al.ActiveAt, Value: al.Value}
				m := site.opts.Paging.Muted(v.Labels)
				v.SilencedBy, v.Maintenance, v.DependencyFailed = m.SilencedBy, m.TimeIntervals, m.DependencyFailed
				q := url.Values{"matchers": {`alertname="` + v.Name + `"`}}
				if c := v.Labels["check"]; c != "" {
					q.Add("matchers", `check="`+c+`"`)
				}
				v.SilenceLink = "/alerts?" + q.Encode() + "#new-silence"
				out = append(out, v)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].State != out[j].State {
			return out[i].State == "firing"
		}
		return out[i].ActiveAt.Before(out[j].ActiveAt)
	})
	return out
}

type alertsData struct {
	Alerts   []uiAlert
	Silences []route.Silence
	// Windows are the configured maintenance windows.
	Windows []route.Window
	// Matchers prefill the new-silence form.
	Matchers string
	// Resolved are the incidents resolved in the last day: a recovered
	// alert stays visible.
	Resolved []client.Incident
}

func (site *Site) pageAlerts(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	d := alertsData{Alerts: site.uiAlerts(now), Matchers: strings.Join(r.URL.Query()["matchers"], "\n"), Windows: site.opts.Paging.Maintenance(now)}
	for _, s := range site.opts.Paging.Silences().List() {
		if s.Status != "expired" || time.Since(s.EndsAt) < 24*time.Hour {
			d.Silences = append(d.Silences, s)
		}
	}
	if list, err := site.opts.API.IncidentViews(r.Context(), 24*time.Hour, 100); err == nil {
		for _, in := range list {
			if !in.Open && time.Since(in.ResolvedAt) < 24*time.Hour {
				d.Resolved = append(d.Resolved, in)
			}
		}
	}
	site.render(w, r, http.StatusOK, "alerts", site.page(w, r, "alerts", "", d))
}

// pageStatus is the public status page: only what api.PublicStatus
// builds, in a layout without the agent's navigation.
func (site *Site) pageStatus(w http.ResponseWriter, r *http.Request) {
	p := site.page(w, r, "public", "", nil)
	d := site.opts.API.PublicStatus(r.Context())
	// The configured text in the page's language, or the default title.
	d.Title, d.Description = site.opts.API.PublicText(p.Lang)
	if d.Title == "" {
		d.Title = T(p.Lang, "public.title")
	}
	p.Title, p.Data = d.Title, d
	site.render(w, r, http.StatusOK, "status", p)
}

type sloData struct {
	SLO client.SLODetail
	// From and To are the window the chart spans.
	From, To time.Time
}

// pageSLO is one SLO for its operators: objective, SLI, attainment and
// budget, the burn-down over the whole window, the burn rates over its
// alert's windows and the alert's state.
func (site *Site) pageSLO(w http.ResponseWriter, r *http.Request) {
	d, err := site.opts.API.SLODetail(r.Context(), r.PathValue("name"))
	switch {
	case errors.Is(err, api.ErrNoSLO):
		site.pageError(w, r, http.StatusNotFound, "no SLO named "+r.PathValue("name"))
		return
	case err != nil:
		site.pageError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	sd := sloData{SLO: d, To: d.ComputedAt}
	if sd.To.IsZero() {
		sd.To = time.Now()
	}
	if win, err := model.ParseDuration(d.Window); err == nil {
		sd.From = sd.To.Add(-time.Duration(win))
	}
	site.render(w, r, http.StatusOK, "slo", site.page(w, r, "overview", d.Name, sd))
}

type incidentsData struct {
	api.IncidentPage
	// Form is the filter as asked (the form's values); Filtered says a
	// filter other than the default 7 days is set.
	Form     url.Values
	Filtered bool
	// First and Last number the incidents shown (1-based); Prev and Next
	// link the neighbouring pages ("" for none).
	First, Last int
	Prev, Next  string
}

// incidentsPageSize is how many incidents /incidents shows at a time.
const incidentsPageSize = 50

// pageIncidents lists incidents with the API's filters (state, check,
// alert name, time range) a page at a time.
func (site *Site) pageIncidents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := api.ParseIncidentFilter(q, site.opts.API.Zone(), time.Now(), incidentsPageSize)
	if err != nil {
		site.pageError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	p, err := site.opts.API.IncidentPage(r.Context(), f)
	if err != nil {
		site.pageError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	d := incidentsData{IncidentPage: p, Form: q, First: p.Offset + 1, Last: p.Offset + len(p.Incidents)}
	for _, k := range []string{"state", "check", "alertname", "from", "to", "days"} {
		if q.Get(k) != "" {
			d.Filtered = true
		}
	}
	link := func(offset int) string {
		v := url.Values{}
		for k, vs := range q {
			if k != "offset" && k != "lang" && k != "flash" && len(vs) > 0 && vs[0] != "" {
				v.Set(k, vs[0])
			}
		}
		if offset > 0 {
			v.Set("offset", strconv.Itoa(offset))
		}
		if len(v) == 0 {
			return "/incidents"
		}
		return "/incidents?" + v.Encode()
	}
	if p.NextOffset > 0 {
		d.Next = link(p.NextOffset)
	}
	if p.Offset > 0 {
		d.Prev = link(max(0, p.Offset-f.Limit))
	}
	site.render(w, r, http.StatusOK, "incidents", site.page(w, r, "incidents", "", d))
}

func (site *Site) pageIncident(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		site.pageError(w, r, http.StatusNotFound, "no such incident")
		return
	}
	in, err := site.opts.API.IncidentView(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNoIncident):
		site.pageError(w, r, http.StatusNotFound, "no such incident")
		return
	case err != nil:
		site.pageError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	site.render(w, r, http.StatusOK, "incident", site.page(w, r, "incidents", in.Alertname, map[string]any{"Incident": in}))
}

type runbooksData struct {
	Runbooks []*runbook.Runbook
	Runs     []client.Run
	Paused   bool
	PausedBy string
}

func (site *Site) pageRunbooks(w http.ResponseWriter, r *http.Request) {
	d := runbooksData{Runbooks: site.opts.Runbooks.Runbooks()}
	d.Paused, d.PausedBy, _ = site.opts.Runbooks.State().Paused(r.Context())
	runs, err := site.opts.Store.Runs(r.Context(), 100)
	if err != nil {
		site.pageError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	for _, run := range runs {
		d.Runs = append(d.Runs, api.ViewRun(run, nil))
	}
	site.render(w, r, http.StatusOK, "runbooks", site.page(w, r, "runbooks", "", d))
}

type runData struct {
	Run client.Run
	// Events is the timeline with details as text.
	Events []runEvent
}

type runEvent struct {
	client.Event
	// DetailText is a detail that is a plain string (who approved, the
	// final state); DetailHTML one that is an object, as a table.
	DetailText string
	DetailHTML template.HTML
	// Receiver is the paging receiver of a notify step.
	Receiver string
}

func (site *Site) pageRun(w http.ResponseWriter, r *http.Request) {
	run, evs, err := site.opts.Store.Run(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNoRun):
		site.pageError(w, r, http.StatusNotFound, err.Error())
		return
	case err != nil:
		site.pageError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	p := site.page(w, r, "runbooks", run.Runbook, nil)
	d := runData{Run: api.ViewRun(run, evs)}
	// A step's start carries the rendered step; a notify step's "check"
	// field is the receiver it pages (runbook.NotifyStep's Render).
	type stepKey struct {
		phase string
		step  int
	}
	receivers := map[stepKey]string{}
	for _, e := range d.Run.Timeline {
		var rs runbook.RenderedStep
		if e.Step != nil && len(e.Detail) > 0 && json.Unmarshal(e.Detail, &rs) == nil && rs.Kind == "notify" && rs.Check != "" {
			receivers[stepKey{e.Phase, *e.Step}] = rs.Check
		}
	}
	for _, e := range d.Run.Timeline {
		re := runEvent{Event: e}
		if e.Step != nil {
			re.Receiver = receivers[stepKey{e.Phase, *e.Step}]
		}
		re.DetailText, re.DetailHTML = eventDetail(p, e.Detail)
		d.Events = append(d.Events, re)
	}
	p.Data = d
	site.render(w, r, http.StatusOK, "run", p)
}

// eventDetail is a journal entry's detail for the timeline: a string as
// text, anything else as tables, a notify step's "check" (its receiver)
// named "receiver".
func eventDetail(p Page, raw json.RawMessage) (string, template.HTML) {
	if len(raw) == 0 {
		return "", ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw), ""
	}
	if s, ok := v.(string); ok {
		return s, ""
	}
	n, err := normalize(json.RawMessage(raw))
	if err != nil {
		return string(raw), ""
	}
	if obj, ok := n.(object); ok {
		if len(obj) == 0 {
			return "", ""
		}
		notify := false
		for _, f := range obj {
			if f.Key == "kind" && f.Val == "notify" {
				notify = true
			}
		}
		for i := range obj {
			if notify && obj[i].Key == "check" {
				obj[i].Key = T(p.Lang, "runbook.receiver")
			}
		}
		n = obj
	}
	var b strings.Builder
	diagRenderer{lang: p.Lang, loc: p.Zone, now: p.Now}.value(&b, "", n, 0)
	return "", template.HTML(b.String())
}

type drillsData struct {
	Drills []client.Drill
	Active *drill.Report
	Runs   []drill.Report
}

func (site *Site) pageDrills(w http.ResponseWriter, r *http.Request) {
	d := drillsData{Drills: site.opts.API.DrillViews()}
	if run := site.opts.Drills.Current(); run != nil {
		rep := run.Report()
		d.Active = &rep
	}
	rows, err := site.opts.Store.DrillRuns(r.Context(), "", 50)
	if err != nil {
		site.pageError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	for _, row := range rows {
		d.Runs = append(d.Runs, site.opts.API.DrillReport(r, row))
	}
	site.render(w, r, http.StatusOK, "drills", site.page(w, r, "drills", "", d))
}

type drillData struct {
	Report drill.Report
	// Took is the run's length as the Markdown report gives it.
	Took string
	// Objectives, Marks and the measures no objective shows (Measures) in
	// the CLI's format (vigil drill run / show): durations as drill.Secs.
	Objectives []objectiveRow
	Marks      []markRow
	Measures   []measure
	Actions    []actionRow
}

type objectiveRow struct {
	Measure, Limit, Measured, Result string
	Passed                           bool
}

type markRow struct {
	drill.Mark
	// Rel is the time since the fault was injected (T+), "" before it.
	Rel string
}

type measure struct {
	Name, Value string
	Seconds     float64
}

type actionRow struct {
	drill.ActionResult
	Took string
}

func (site *Site) pageDrill(w http.ResponseWriter, r *http.Request) {
	row, err := site.opts.Store.DrillRun(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		site.pageError(w, r, http.StatusNotFound, err.Error())
		return
	case err != nil:
		site.pageError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	rep := site.opts.API.DrillReport(r, row)
	site.render(w, r, http.StatusOK, "drill", site.page(w, r, "drills", rep.Drill, newDrillData(rep)))
}

// newDrillData lays a report out for its page: each fact once (a measure
// an objective shows is not listed again), durations as the CLI prints
// them.
func newDrillData(rep drill.Report) drillData {
	d := drillData{Report: rep}
	if !rep.FinishedAt.IsZero() {
		d.Took = rep.FinishedAt.Sub(rep.StartedAt).Round(time.Second).String()
	}
	shown := map[string]bool{}
	for _, o := range rep.Objectives {
		limit, measured, res := o.Cells()
		d.Objectives = append(d.Objectives, objectiveRow{Measure: o.Measure, Limit: "≤ " + limit, Measured: measured, Result: res, Passed: o.Passed})
		shown[o.Measure] = true
	}
	for name, s := range rep.Measures {
		if !shown[name] {
			d.Measures = append(d.Measures, measure{Name: name, Value: drill.Secs(s), Seconds: s})
		}
	}
	sort.Slice(d.Measures, func(i, j int) bool { return d.Measures[i].Seconds < d.Measures[j].Seconds })
	var t0 time.Time
	for _, m := range rep.Marks {
		if m.Name == drill.MarkInjected {
			t0 = m.At
		}
	}
	for _, m := range rep.Marks {
		mr := markRow{Mark: m}
		if !t0.IsZero() {
			if rel := m.At.Sub(t0).Seconds(); rel < 0 {
				mr.Rel = "T-" + drill.Secs(-rel)
			} else {
				mr.Rel = "T+" + drill.Secs(rel)
			}
		}
		d.Marks = append(d.Marks, mr)
	}
	for _, a := range rep.Actions {
		d.Actions = append(d.Actions, actionRow{ActionResult: a, Took: a.Took.Round(time.Millisecond).String()})
	}
	return d
}

// Form posts. Each checks the form token, acts as the authenticated user
// (or the loopback client), then redirects back (post/redirect/get).

func (site *Site) formOK(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		site.pageError(w, r, http.StatusBadRequest, "bad form: "+err.Error())
		return false
	}
	if !site.opts.CSRF.Valid(httpx.User(r.Context()), r.PostForm.Get("csrf")) {
		site.opts.OnCSRFRefused()
		site.opts.Logger.Warn("form post without a valid token refused", "path", r.URL.Path, "remote", r.RemoteAddr)
		site.pageError(w, r, http.StatusForbidden, "the form token is missing or stale: reload the page and try again")
		return false
	}
	return true
}

// safeNext keeps redirects on this site: only an absolute path on this
// origin is followed, anything else goes to the overview. Browsers drop
// tabs and newlines from URLs and read a backslash as a slash, so
// "/\t/evil.example" or "/\\evil.example" would become the scheme-relative
// "//evil.example": such characters are refused outright, and the result is
// rebuilt from the parsed path and query, never passed through as given
// (escaped again, so "/%09/x" stays a path on this site).
func safeNext(next string) string {
	odd := func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' || unicode.IsSpace(r) }
	if next == "" || next[0] != '/' || strings.ContainsFunc(next, odd) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") || strings.HasPrefix(u.EscapedPath(), "//") {
		return "/"
	}
	out := u.EscapedPath()
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out
}

func back(w http.ResponseWriter, r *http.Request, to, flash string) {
	u := safeNext(to)
	if flash != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "flash=" + url.QueryEscape(flash)
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

func (site *Site) formReload(w http.ResponseWriter, r *http.Request) {
	if !site.formOK(w, r) {
		return
	}
	if err := site.opts.Reload(r.Context()); err != nil {
		site.opts.Logger.Error("reload failed; keeping the running config", "err", err, "by", httpx.Actor(r))
		site.pageError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	site.opts.Logger.Info("config reloaded from the status page", "by", httpx.Actor(r))
	back(w, r, "/", "reloaded")
}

func (site *Site) formRunCheck(w http.ResponseWriter, r *http.Request) {
	if !site.formOK(w, r) {
		return
	}
	name := r.PathValue("name")
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	site.opts.Logger.Info("check run requested", "check", name, "by", httpx.Actor(r))
	if _, err := site.opts.Scheduler.RunNow(ctx, name); err != nil {
		site.pageError(w, r, http.StatusServiceUnavailable, err.Error())
		return
	}
	back(w, r, "/checks/"+url.PathEscape(name), "ran")
}

func (site *Site) formAddSilence(w http.ResponseWriter, r *http.Request) {
	if !site.formOK(w, r) {
		return
	}
	var matchers []string
	for _, line := range strings.Split(r.PostForm.Get("matchers"), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			matchers = append(matchers, line)
		}
	}
	d, err := time.ParseDuration(r.PostForm.Get("duration"))
	if err != nil || d <= 0 {
		site.pageError(w, r, http.StatusBadRequest, "bad duration "+r.PostForm.Get("duration"))
		return
	}
	now := time.Now()
	s, err := site.opts.Paging.Silences().Add(r.Context(), route.Silence{Matchers: matchers, StartsAt: now, EndsAt: now.Add(d),
		CreatedBy: httpx.Actor(r), Comment: r.PostForm.Get("comment")})
	if err != nil {
		site.pageError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	site.opts.Logger.Info("silence added", "id", s.ID, "matchers", s.Matchers, "ends_at", s.EndsAt, "created_by", s.CreatedBy)
	if warning := site.opts.API.SilenceWarning(r.Context(), s); warning != "" {
		site.opts.Logger.Warn("silence matches nothing known", "id", s.ID, "matchers", s.Matchers, "why", warning)
		back(w, r, "/alerts", "silenced_nomatch")
		return
	}
	back(w, r, "/alerts", "silenced")
}

func (site *Site) formExpireSilence(w http.ResponseWriter, r *http.Request) {
	if !site.formOK(w, r) {
		return
	}
	id := r.PathValue("id")
	if err := site.opts.Paging.Silences().Expire(r.Context(), id); err != nil {
		site.pageError(w, r, http.StatusNotFound, err.Error())
		return
	}
	site.opts.Logger.Info("silence expired", "id", id, "by", httpx.Actor(r))
	back(w, r, "/alerts", "expired")
}

func (site *Site) formRunAction(w http.ResponseWriter, r *http.Request) {
	if !site.formOK(w, r) {
		return
	}
	id, by := r.PathValue("id"), httpx.Actor(r)
	var err error
	switch action := r.PathValue("action"); action {
	case "approve", "reject":
		err = site.opts.Runbooks.Approve(id, by, action == "approve")
	case "abort":
		err = site.opts.Runbooks.Abort(r.Context(), id, by)
	default:
		site.pageError(w, r, http.StatusNotFound, "unknown action "+action)
		return
	}
	if err != nil {
		site.pageError(w, r, http.StatusConflict, err.Error())
		return
	}
	site.opts.Logger.Info("runbook run "+r.PathValue("action")+" from the status page", "id", id, "by", by)
	back(w, r, "/runbooks/runs/"+url.PathEscape(id), r.PathValue("action"))
}

func (site *Site) formDrillRun(w http.ResponseWriter, r *http.Request) {
	if !site.formOK(w, r) {
		return
	}
	d := site.opts.Drills.ByName(r.PostForm.Get("name"))
	if d == nil {
		site.pageError(w, r, http.StatusNotFound, "no drill named "+r.PostForm.Get("name")+" is loaded")
		return
	}
	id, err := site.opts.Drills.Start(d, httpx.Actor(r))
	if err != nil {
		site.pageError(w, r, http.StatusConflict, err.Error())
		return
	}
	back(w, r, "/drills/runs/"+url.PathEscape(id), "drill_started")
}

func (site *Site) formDrillAbort(w http.ResponseWriter, r *http.Request) {
	if !site.formOK(w, r) {
		return
	}
	id := r.PathValue("id")
	if err := site.opts.Drills.Abort(id, httpx.Actor(r)); err != nil {
		site.pageError(w, r, http.StatusConflict, err.Error())
		return
	}
	site.opts.Logger.Warn("drill aborted", "id", id, "by", httpx.Actor(r))
	back(w, r, "/drills/runs/"+url.PathEscape(id), "drill_aborted")
}
