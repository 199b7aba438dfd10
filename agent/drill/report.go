package drill

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Report is a drill run's outcome: the timeline of milestones, the
// measures and objectives, what the runbooks did and the pages sent.
type Report struct {
	ID         string             `json:"id"`
	Drill      string             `json:"drill"`
	Hypothesis string             `json:"hypothesis"`
	State      string             `json:"state"`
	Aborted    string             `json:"aborted,omitempty"`
	Checks     []string           `json:"checks"`
	StartedAt  time.Time          `json:"started_at"`
	FinishedAt time.Time          `json:"finished_at,omitzero"`
	Marks      []Mark             `json:"marks"`
	Measures   map[string]float64 `json:"measures_seconds,omitempty"`
	Objectives []ObjectiveResult  `json:"objectives,omitempty"`
	Actions    []ActionResult     `json:"actions,omitempty"`
	Runbooks   []RunbookRun       `json:"runbook_runs,omitempty"`
	Pages      []Page             `json:"pages,omitempty"`
	Problems   []string           `json:"problems,omitempty"`
}

// Mark is a milestone with the time it happened (from the event itself).
type Mark struct {
	Name   string    `json:"name"`
	At     time.Time `json:"at"`
	Detail string    `json:"detail,omitempty"`
}

// Page is a notification about the drill that the outbox delivered.
type Page struct {
	Target string    `json:"target"`
	DoneAt time.Time `json:"delivered_at"`
	Status string    `json:"status"` // firing | resolved
	// Alerts names the drill's alerts in it; a runbook's notify step is
	// "RunbookNotification" and does not count as the page.
	Alerts []string `json:"alerts"`
}

// isPage: the notification carries an alert, not only a runbook message.
func (p Page) isPage() bool {
	return slices.ContainsFunc(p.Alerts, func(a string) bool { return a != "RunbookNotification" }) && p.Status == "firing"
}

// ObjectiveResult is one objective against its measure.
type ObjectiveResult struct {
	Measure  string   `json:"measure"`
	Limit    float64  `json:"limit_seconds"`
	Measured *float64 `json:"measured_seconds"` // nil: never reached
	Passed   bool     `json:"passed"`
}

// ActionResult is an inject or rollback action as it ran.
type ActionResult struct {
	Phase string        `json:"phase"`
	Index int           `json:"index"`
	Name  string        `json:"name"`
	At    time.Time     `json:"at"`
	Took  time.Duration `json:"took_ns"`
	Error string        `json:"error,omitempty"`
}

// RunbookRun is a runbook run the drill caused.
type RunbookRun struct {
	ID        string    `json:"id"`
	Runbook   string    `json:"runbook"`
	State     string    `json:"state"`
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func (r Report) clone() Report {
	c := r
	c.Checks = slices.Clone(r.Checks)
	c.Marks = slices.Clone(r.Marks)
	c.Objectives = slices.Clone(r.Objectives)
	c.Actions = slices.Clone(r.Actions)
	c.Runbooks = slices.Clone(r.Runbooks)
	c.Pages = slices.Clone(r.Pages)
	c.Problems = slices.Clone(r.Problems)
	if r.Measures != nil {
		c.Measures = make(map[string]float64, len(r.Measures))
		for k, v := range r.Measures {
			c.Measures[k] = v
		}
	}
	return c
}

// at is when the milestone happened (zero when it did not).
func (r Report) at(name string) time.Time {
	for _, m := range r.Marks {
		if m.Name == name {
			return m.At
		}
	}
	return time.Time{}
}

func secs(v float64) string { return Secs(v) }

// Secs formats seconds as a duration to a tenth of a second.
func Secs(v float64) string {
	return (time.Duration(v * float64(time.Second))).Round(100 * time.Millisecond).String()
}

// Cells is the objective for a table: limit, measured value ("not
// reached") and result ("pass" or "FAIL").
func (o ObjectiveResult) Cells() (limit, measured, result string) {
	measured, result = "not reached", "FAIL"
	if o.Measured != nil {
		measured = Secs(*o.Measured)
	}
	if o.Passed {
		result = "pass"
	}
	return Secs(o.Limit), measured, result
}

// Markdown renders the report for people.
func (r Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Drill %s — %s\n\n", r.Drill, strings.ToUpper(r.State))
	fmt.Fprintf(&b, "- Run: `%s`\n- Started: %s\n", r.ID, r.StartedAt.UTC().Format(time.RFC3339))
	if !r.FinishedAt.IsZero() {
		fmt.Fprintf(&b, "- Finished: %s (%s)\n", r.FinishedAt.UTC().Format(time.RFC3339), r.FinishedAt.Sub(r.StartedAt).Round(time.Second))
	}
	fmt.Fprintf(&b, "- Checks under fault: %s\n", strings.Join(r.Checks, ", "))
	if r.Aborted != "" {
		fmt.Fprintf(&b, "- Aborted: %s\n", r.Aborted)
	}
	fmt.Fprintf(&b, "\n## Hypothesis\n\n%s\n", strings.TrimSpace(r.Hypothesis))
	if len(r.Objectives) > 0 {
		b.WriteString("\n## Objectives\n\n| measure | objective | measured | result |\n|---|---|---|---|\n")
		for _, o := range r.Objectives {
			limit, measured, res := o.Cells()
			fmt.Fprintf(&b, "| %s | ≤ %s | %s | %s |\n", o.Measure, limit, measured, res)
		}
	}
	b.WriteString("\n## Timeline\n\n| time | T+ | milestone | detail |\n|---|---|---|---|\n")
	t0 := r.at(MarkInjected)
	for _, m := range r.Marks {
		rel := ""
		if !t0.IsZero() {
			rel = secs(m.At.Sub(t0).Seconds())
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", m.At.UTC().Format("15:04:05.000"), rel, m.Name, mdCell(m.Detail))
	}
	if len(r.Actions) > 0 {
		b.WriteString("\n## Actions\n\n| phase | action | took | error |\n|---|---|---|---|\n")
		for _, a := range r.Actions {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", a.Phase, mdCell(a.Name), a.Took.Round(time.Millisecond), mdCell(a.Error))
		}
	}
	b.WriteString("\n## Runbook runs\n\n")
	if len(r.Runbooks) == 0 {
		b.WriteString("None.\n")
	}
	for _, rr := range r.Runbooks {
		fmt.Fprintf(&b, "- `%s` %s: %s %s (`vigil runbook show %s`)\n", rr.ID, rr.Runbook, rr.State, rr.Error, rr.ID)
	}
	b.WriteString("\n## Pages sent\n\n")
	if len(r.Pages) == 0 {
		b.WriteString("None.\n")
	}
	for _, p := range r.Pages {
		fmt.Fprintf(&b, "- %s to %s: %s %s\n", p.DoneAt.UTC().Format("15:04:05.000"), p.Target, p.Status, strings.Join(p.Alerts, ", "))
	}
	if len(r.Problems) > 0 {
		b.WriteString("\n## What went wrong\n\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "- %s\n", p)
		}
	}
	return b.String()
}

func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// Stats are a measure's distribution over past runs.
type Stats struct {
	Measure string  `json:"measure"`
	Count   int     `json:"count"`
	P50     float64 `json:"p50_seconds"`
	P90     float64 `json:"p90_seconds"`
	Max     float64 `json:"max_seconds"`
}

// History summarises reports: for each measure, the nearest-rank p50 and
// p90 and the maximum over the runs that reached it.
func History(reports []Report) []Stats {
	var out []Stats
	for _, m := range Measures {
		var vs []float64
		for _, r := range reports {
			if v, ok := r.Measures[m]; ok {
				vs = append(vs, v)
			}
		}
		if len(vs) == 0 {
			continue
		}
		sort.Float64s(vs)
		out = append(out, Stats{Measure: m, Count: len(vs), P50: rank(vs, 0.5), P90: rank(vs, 0.9), Max: vs[len(vs)-1]})
	}
	return out
}

// rank is the nearest-rank percentile of sorted values.
func rank(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
