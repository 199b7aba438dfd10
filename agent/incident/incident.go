// Package incident keeps the agent's incidents: an incident opens when an
// alert fires and closes when it resolves. Its timeline puts on one line
// what happened around it — the check's failed runs with their reasons
// and diagnostics, the alert's state changes, every page delivered or
// failed, the runbook runs the alert started and their steps, and the
// silences that covered it — read from the store when it is shown. Its
// durations are the drills' measures for a real incident, counted from the
// check's first failed run: time to detect (the alert fires), to page (the
// first page delivered) and to recover (the alert resolves).
package incident

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/agent/store"
)

// Store is what incidents are kept in and read from.
type Store interface {
	OpenIncident(ctx context.Context, in store.Incident) (int64, error)
	ResolveIncident(ctx context.Context, fingerprint string, at, pagedAt time.Time) error
	OpenIncidents(ctx context.Context) ([]store.Incident, error)
	IncidentByID(ctx context.Context, id int64) (store.Incident, error)
	FirstFailure(ctx context.Context, check string, at time.Time) (time.Time, bool, error)
	HistoryBetween(ctx context.Context, check string, from, to time.Time, limit int) ([]store.Record, error)
	OutboxBetween(ctx context.Context, from, to time.Time, limit int) ([]*store.OutboxItem, error)
	Runs(ctx context.Context, limit int, states ...string) ([]store.RunRow, error)
	Run(ctx context.Context, id string) (store.RunRow, []store.RunEvent, error)
}

// Acks reads runbook acknowledgements (the runbook lock state): key is
// runbook/target.
type Acks interface {
	Acked(ctx context.Context, key string) (by string, at time.Time, ok bool, err error)
}

// Options configure a Recorder.
type Options struct {
	Store Store
	// RootCause names the failing dependency of a check ("" for none).
	RootCause func(check string) string
	// Silences are the pager's silences (nil: none shown).
	Silences func() []route.Silence
	// Acks are the runbook acknowledgements (nil: none shown).
	Acks   Acks
	Logger *slog.Logger
	Now    func() time.Time
}

// Recorder opens and closes incidents from the alerts the rule engine
// sends (an alerts.Consumer).
type Recorder struct {
	opts Options

	mu   sync.Mutex
	open map[string]bool // fingerprints with an open incident
}

// New returns a recorder; Load reads the incidents a previous run left open.
func New(opts Options) *Recorder {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Recorder{opts: opts, open: map[string]bool{}}
}

// Load remembers the open incidents in the store, so a restarted agent
// neither opens them twice nor misses their close.
func (r *Recorder) Load(ctx context.Context) error {
	ins, err := r.opts.Store.OpenIncidents(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, in := range ins {
		r.open[in.Fingerprint] = true
	}
	return nil
}

// Alerts opens an incident for each alert that fires without one and
// closes the incident of each alert that resolved. Drill alerts are the
// drills' business (their reports).
func (r *Recorder) Alerts(ctx context.Context, alerts []notify.Alert) {
	now := r.opts.Now()
	for _, a := range alerts {
		if a.Labels["drill"] == "true" {
			continue
		}
		r.mu.Lock()
		isOpen := r.open[a.Fingerprint]
		r.mu.Unlock()
		switch {
		case a.Resolved(now) && isOpen:
			if err := r.close(ctx, a); err != nil {
				r.opts.Logger.Warn("could not close incident", "alert", a.Labels["alertname"], "err", err)
				continue
			}
			r.mu.Lock()
			delete(r.open, a.Fingerprint)
			r.mu.Unlock()
		case !a.Resolved(now) && !isOpen:
			if err := r.openIncident(ctx, a, now); err != nil {
				r.opts.Logger.Warn("could not open incident", "alert", a.Labels["alertname"], "err", err)
				continue
			}
			r.mu.Lock()
			r.open[a.Fingerprint] = true
			r.mu.Unlock()
		}
	}
}

func (r *Recorder) openIncident(ctx context.Context, a notify.Alert, now time.Time) error {
	in := store.Incident{Fingerprint: a.Fingerprint, Alertname: a.Labels["alertname"], Labels: a.Labels,
		Annotations: a.Annotations, Check: a.Labels["check"], StartedAt: a.StartsAt, FiringAt: now}
	if in.StartedAt.IsZero() || in.StartedAt.After(now) {
		in.StartedAt = now
	}
	if in.Check != "" {
		if r.opts.RootCause != nil {
			in.RootCause = r.opts.RootCause(in.Check)
		}
		if t, ok, err := r.opts.Store.FirstFailure(ctx, in.Check, now); err == nil && ok {
			in.FirstFailureAt = t
		}
	}
	id, err := r.opts.Store.OpenIncident(ctx, in)
	if err == nil {
		r.opts.Logger.Info("incident opened", "id", id, "alert", in.Alertname, "check", in.Check, "root_cause", in.RootCause)
	}
	return err
}

func (r *Recorder) close(ctx context.Context, a notify.Alert) error {
	at := a.EndsAt
	if at.IsZero() || at.After(r.opts.Now()) {
		at = r.opts.Now()
	}
	var paged time.Time
	if ins, err := r.opts.Store.OpenIncidents(ctx); err == nil {
		for _, in := range ins {
			if in.Fingerprint == a.Fingerprint {
				paged = r.firstPage(ctx, in, at)
			}
		}
	}
	return r.opts.Store.ResolveIncident(ctx, a.Fingerprint, at, paged)
}

// firstPage is when the first firing page of the incident was delivered.
func (r *Recorder) firstPage(ctx context.Context, in store.Incident, end time.Time) time.Time {
	for _, e := range r.pages(ctx, in, end) {
		if e.Outcome == "sent" && e.Status == "firing" {
			return e.At
		}
	}
	return time.Time{}
}

// Event is one entry of an incident's timeline.
type Event struct {
	At time.Time
	// Kind is failure, recovery, alert, page, runbook, ack, silence.
	Kind string
	// Title is a line for people; Detail more lines (diagnostics, steps).
	Title  string
	Detail []string
	// Status and Outcome of a page: firing or resolved; sent, failed,
	// pending or dead.
	Status, Outcome string
	// Link is a page of the agent with more (a runbook run, the check).
	Link string
}

// Durations are an incident's measures from the check's first failed run
// (zero when not known, or not reached yet).
type Durations struct {
	Detect, Page, Recover time.Duration
}

// View is an incident with its timeline.
type View struct {
	store.Incident
	Durations Durations
	Events    []Event
}

// maxEvents bounds each source of a timeline: a check failing every 10 s
// for a day is 8,640 runs, of which a page shows the first and the last.
const maxEvents = 200

// Timeline reads an incident and everything around it.
func (r *Recorder) Timeline(ctx context.Context, id int64) (View, error) {
	in, err := r.opts.Store.IncidentByID(ctx, id)
	if err != nil {
		return View{}, err
	}
	end := in.ResolvedAt
	if end.IsZero() {
		end = r.opts.Now()
	}
	v := View{Incident: in}
	v.Events = append(v.Events, r.checkEvents(ctx, in, end)...)
	v.Events = append(v.Events, alertEvents(in)...)
	pages := r.pages(ctx, in, end)
	v.Events = append(v.Events, pages...)
	v.Events = append(v.Events, r.runbookEvents(ctx, in, end)...)
	v.Events = append(v.Events, r.silenceEvents(in, end)...)
	sort.SliceStable(v.Events, func(i, j int) bool { return v.Events[i].At.Before(v.Events[j].At) })
	v.Durations = durations(in, pages)
	return v, nil
}

// DurationsOf are an incident's durations from what its row holds (the
// time to page of an open incident needs its pages: Timeline).
func DurationsOf(in store.Incident) Durations { return durations(in, nil) }

func durations(in store.Incident, pages []Event) Durations {
	var d Durations
	t0 := in.FirstFailureAt
	if t0.IsZero() {
		return d
	}
	d.Detect = in.FiringAt.Sub(t0)
	paged := in.PagedAt
	if paged.IsZero() {
		for _, p := range pages {
			if p.Outcome == "sent" && p.Status == "firing" {
				paged = p.At
				break
			}
		}
	}
	if !paged.IsZero() {
		d.Page = paged.Sub(t0)
	}
	if !in.ResolvedAt.IsZero() {
		d.Recover = in.ResolvedAt.Sub(t0)
	}
	return d
}

func alertEvents(in store.Incident) []Event {
	name := in.Alertname
	ev := []Event{}
	if in.StartedAt.Before(in.FiringAt) {
		ev = append(ev, Event{At: in.StartedAt, Kind: "alert", Title: name + " pending"})
	}
	title := name + " firing"
	if in.RootCause != "" {
		title += " — root cause: " + in.RootCause + " failing"
	}
	ev = append(ev, Event{At: in.FiringAt, Kind: "alert", Title: title, Detail: annotationLines(in.Annotations)})
	if !in.ResolvedAt.IsZero() {
		ev = append(ev, Event{At: in.ResolvedAt, Kind: "alert", Title: name + " resolved"})
	}
	return ev
}

func annotationLines(a map[string]string) []string {
	var out []string
	for _, k := range []string{"summary", "description"} {
		if a[k] != "" {
			out = append(out, a[k])
		}
	}
	return out
}

// checkEvents are the check's failed runs from the streak's first to the
// end, and the run that passed after them.
func (r *Recorder) checkEvents(ctx context.Context, in store.Incident, end time.Time) []Event {
	if in.Check == "" {
		return nil
	}
	from := in.FirstFailureAt
	if from.IsZero() {
		from = in.StartedAt
	}
	recs, err := r.opts.Store.HistoryBetween(ctx, in.Check, from, end.Add(time.Minute), 10*maxEvents)
	if err != nil {
		r.opts.Logger.Warn("incident timeline: check history", "err", err)
		return nil
	}
	var out []Event
	failures, shown := 0, 0
	for _, rec := range recs {
		res := rec.Result
		if res.Success {
			if failures > 0 {
				out = append(out, Event{At: res.Start, Kind: "recovery", Title: in.Check + " passed", Link: "/checks/" + in.Check})
				break
			}
			continue
		}
		failures++
		if shown >= maxEvents {
			continue
		}
		shown++
		e := Event{At: res.Start, Kind: "failure", Title: fmt.Sprintf("%s failed: %s", in.Check, res.Reason),
			Detail: []string{res.Message}, Link: "/checks/" + in.Check}
		for k, v := range res.Diagnostics {
			b, _ := json.Marshal(v)
			e.Detail = append(e.Detail, k+": "+truncate(string(b), 300))
		}
		sort.Strings(e.Detail[1:])
		out = append(out, e)
	}
	if failures > shown {
		out = append(out, Event{At: end, Kind: "failure", Title: fmt.Sprintf("%d more failed runs of %s not shown", failures-shown, in.Check)})
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// pages are the notifications that carried the incident's alert.
func (r *Recorder) pages(ctx context.Context, in store.Incident, end time.Time) []Event {
	items, err := r.opts.Store.OutboxBetween(ctx, in.StartedAt.Add(-store.IncidentPagesBefore), end.Add(store.IncidentPagesAfter), 10*maxEvents)
	if err != nil {
		r.opts.Logger.Warn("incident timeline: pages", "err", err)
		return nil
	}
	var out []Event
	for _, it := range items {
		var m notify.Message
		if json.Unmarshal(it.Payload, &m) != nil {
			continue
		}
		status := ""
		for _, a := range m.Alerts {
			if a.Fingerprint == in.Fingerprint {
				status = "firing"
				if a.Resolved(m.Created) {
					status = "resolved"
				}
			}
		}
		if status == "" {
			continue
		}
		e := Event{At: it.CreatedAt, Kind: "page", Status: status, Outcome: it.State}
		switch it.State {
		case store.OutboxSent:
			e.At, e.Outcome = it.DoneAt, "sent"
		case store.OutboxDead:
			e.At = it.DoneAt
		}
		e.Title = fmt.Sprintf("page (%s) to %s: %s", status, it.Target, e.Outcome)
		if it.Attempts > 1 || it.LastError != "" {
			e.Detail = append(e.Detail, fmt.Sprintf("%d attempts", it.Attempts))
		}
		if it.LastError != "" {
			e.Detail = append(e.Detail, "last error: "+it.LastError)
		}
		out = append(out, e)
		if len(out) >= maxEvents {
			break
		}
	}
	return out
}

// runbookEvents are the runs the incident's alert started, with their
// journal.
func (r *Recorder) runbookEvents(ctx context.Context, in store.Incident, end time.Time) []Event {
	runs, err := r.opts.Store.Runs(ctx, 500)
	if err != nil {
		r.opts.Logger.Warn("incident timeline: runbook runs", "err", err)
		return nil
	}
	var out []Event
	acked := map[string]bool{}
	for _, run := range runs {
		fp, _, _ := strings.Cut(run.Alert, "@")
		if fp != in.Fingerprint || run.CreatedAt.Before(in.StartedAt.Add(-time.Minute)) {
			continue
		}
		link := "/runbooks/runs/" + run.ID
		out = append(out, Event{At: run.CreatedAt, Kind: "runbook", Title: fmt.Sprintf("runbook %s started (%s)", run.Runbook, run.Mode), Link: link})
		_, events, err := r.opts.Store.Run(ctx, run.ID)
		if err != nil {
			continue
		}
		for _, ev := range events {
			title := "runbook " + run.Runbook + ": " + ev.Kind
			if ev.Name != "" {
				title += " " + ev.Name
			}
			e := Event{At: ev.At, Kind: "runbook", Title: title, Link: link}
			if ev.Error != "" {
				e.Detail = append(e.Detail, "error: "+ev.Error)
			}
			out = append(out, e)
		}
		if !run.FinishedAt.IsZero() {
			out = append(out, Event{At: run.FinishedAt, Kind: "runbook", Title: fmt.Sprintf("runbook %s %s", run.Runbook, run.State), Link: link})
		}
		acked[run.Runbook+"/"+run.Target] = true
	}
	// Acknowledgements of those runbooks' targets made during the incident
	// (an ack clears the runbook's cooldown for its target).
	if r.opts.Acks != nil {
		for key := range acked {
			by, at, ok, err := r.opts.Acks.Acked(ctx, key)
			if err != nil || !ok || at.Before(in.StartedAt) || at.After(end.Add(10*time.Minute)) {
				continue
			}
			rb, target, _ := strings.Cut(key, "/")
			out = append(out, Event{At: at, Kind: "ack", Title: fmt.Sprintf("acknowledged by %s: runbook %s for %s (cooldown cleared)", by, rb, target), Link: "/runbooks"})
		}
	}
	return out
}

// silenceEvents are the silences matching the alert that held during the
// incident.
func (r *Recorder) silenceEvents(in store.Incident, end time.Time) []Event {
	if r.opts.Silences == nil {
		return nil
	}
	var out []Event
	for _, s := range r.opts.Silences() {
		ms, err := s.Matchers.Parse()
		if err != nil || !route.Matches(ms, in.Labels) || s.StartsAt.After(end) || s.EndsAt.Before(in.StartedAt) {
			continue
		}
		e := Event{At: s.StartsAt, Kind: "silence", Title: fmt.Sprintf("silenced by %s until %s", s.CreatedBy, s.EndsAt.UTC().Format(time.RFC3339)),
			Detail: []string{strings.Join(s.Matchers, ", ")}}
		if s.Comment != "" {
			e.Detail = append(e.Detail, s.Comment)
		}
		out = append(out, e)
	}
	return out
}
