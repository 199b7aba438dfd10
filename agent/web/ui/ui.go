// Package ui renders the agent's status page: server-side Go templates and
// a little plain JavaScript, all embedded in the binary (no CDN), in
// Chinese and English. The agent package owns the handlers and the data;
// this package owns the templates, the translations and the helpers they
// use.
package ui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/runbook"
	"golang.org/x/text/language"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Page is what every template gets.
type Page struct {
	Lang  string // "en" or "zh"
	Title string
	// Nav is the active section: overview, alerts, runbooks, drills.
	Nav string
	// User is the authenticated user; AuthEnabled says users are configured.
	User        string
	AuthEnabled bool
	// CSRF is the form token for this user.
	CSRF string
	// Path is the request path with its query, for the language links.
	Path string
	// Flash is a one-line notice after a form post (already translated or
	// a message from the agent).
	Flash string
	Now   time.Time
	// Zone is where times are shown (global.timezone; nil: the host's).
	Zone *time.Location
	Data any
}

// Pages renders the templates; they are parsed at the first request, so an
// agent nobody looks at does not hold them.
type Pages struct {
	once  sync.Once
	pages map[string]*template.Template
	err   error
}

// New returns the page renderer.
func New() *Pages { return &Pages{} }

// Names of the page templates (templates/<name>.html).
var pageNames = []string{"overview", "check", "alerts", "incidents", "incident", "slo", "status", "runbooks", "run", "drills", "drill", "error"}

func (p *Pages) parse() {
	p.pages = map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			p.err = fmt.Errorf("parse template %s: %w", name, err)
			return
		}
		p.pages[name] = t
	}
}

// Render writes a page. Pages are never cached: they show live state.
func (p *Pages) Render(w http.ResponseWriter, status int, name string, page Page) error {
	p.once.Do(p.parse)
	if p.err != nil {
		return p.err
	}
	t, ok := p.pages[name]
	if !ok {
		return fmt.Errorf("no page template %q", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", page); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// Static serves the embedded CSS and JavaScript under /static/.
func Static() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(sub)
	return http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
}

// langCookie remembers the language chosen with ?lang=.
const langCookie = "vigil_lang"

var langMatcher = language.NewMatcher([]language.Tag{language.English, language.Chinese})

// Lang picks the page language: ?lang= (remembered in a cookie), then the
// cookie, then the browser's Accept-Language (Chinese when it asks for it).
func Lang(w http.ResponseWriter, r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "en" || l == "zh" {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, SameSite: http.SameSiteLaxMode})
		return l
	}
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == "en" || c.Value == "zh") {
		return c.Value
	}
	tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err != nil || len(tags) == 0 {
		return "en"
	}
	_, idx, conf := langMatcher.Match(tags...)
	if idx == 1 && conf != language.No {
		return "zh"
	}
	return "en"
}

// T translates a message key; unknown keys fall back to English, then to
// the key itself.
func T(lang, key string) string {
	if m, ok := messages[key]; ok {
		if lang == "zh" && m.zh != "" {
			return m.zh
		}
		if m.en != "" {
			return m.en
		}
	}
	return key
}

// Point is one run in a sparkline.
type Point struct {
	Seconds float64
	OK      bool
}

// Sparkline draws durations as an inline SVG polyline, oldest first, with
// failed runs as red dots. Inline SVG needs no script and passes the CSP.
func Sparkline(points []Point, width, height int) template.HTML {
	if len(points) == 0 {
		return ""
	}
	max := 0.0
	for _, p := range points {
		max = math.Max(max, p.Seconds)
	}
	if max == 0 {
		max = 1
	}
	step := float64(width-4) / math.Max(1, float64(len(points)-1))
	var line, dots strings.Builder
	for i, p := range points {
		x := 2 + float64(i)*step
		y := float64(height-3) - (p.Seconds/max)*float64(height-6)
		fmt.Fprintf(&line, "%.1f,%.1f ", x, y)
		if !p.OK {
			fmt.Fprintf(&dots, `<circle cx="%.1f" cy="%.1f" r="2" class="spark-fail"/>`, x, y)
		}
	}
	return template.HTML(fmt.Sprintf(`<svg class="spark" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="duration history"><polyline points="%s" class="spark-line"/>%s</svg>`,
		width, height, width, height, strings.TrimSpace(line.String()), dots.String()))
}

// RunBar draws a check's last runs as a bar of slots, oldest left, newest
// right: green for a pass, red for a failure, grey for no run yet (a new
// check, an hourly check's first hours). Each slot names its time, result,
// reason and duration on hover (title) and on tap or keyboard focus (the
// data-tip shown by CSS), without script. history is newest first, as the
// API gives it.
func RunBar(lang string, loc *time.Location, history []client.HistoryEntry, slots int) template.HTML {
	var b strings.Builder
	b.WriteString(`<span class="runbar" role="img" aria-label="`)
	b.WriteString(template.HTMLEscapeString(T(lang, "uptime.bar")))
	b.WriteString(`">`)
	for range max(0, slots-len(history)) {
		b.WriteString(`<i class="none"></i>`)
	}
	for i := min(len(history), slots) - 1; i >= 0; i-- {
		h := history[i]
		class, tip := "ok", "OK"
		if !h.Success {
			class, tip = "fail", "FAIL "+h.Reason
		}
		tip = Timestamp(loc, h.Start) + " · " + tip + " · " + Secs(lang, h.DurationSeconds)
		fmt.Fprintf(&b, `<i class="%s" tabindex="0" title="%s" data-tip="%s"></i>`, class,
			template.HTMLEscapeString(tip), template.HTMLEscapeString(tip))
	}
	b.WriteString(`</span>`)
	return template.HTML(b.String())
}

// BurnChart draws an SLO's error budget remaining over its window as an
// inline SVG line: the top edge is the whole budget, the dashed line its
// end (0%); a line below it is budget overspent. The x axis runs from
// the first point to the last. Inline SVG needs no script and passes the
// CSP.
func BurnChart(points []client.BurnPoint, width, height int) template.HTML {
	if len(points) == 0 {
		return ""
	}
	return burnChart(points, points[0].At, points[len(points)-1].At, width, height, "burn")
}

// BurnChartWindow is BurnChart with the x axis running over the whole
// window, from to to (the SLO page's large chart: hours without runs
// show as a gap at the start).
func BurnChartWindow(points []client.BurnPoint, from, to time.Time, width, height int) template.HTML {
	if len(points) == 0 {
		return ""
	}
	return burnChart(points, from, to, width, height, "burn large")
}

// burnChart draws points over t0..t1; the large chart marks the last
// point, which is all there is early in a window.
func burnChart(points []client.BurnPoint, t0, t1 time.Time, width, height int, svgClass string) template.HTML {
	lo := 0.0
	for _, p := range points {
		lo = math.Min(lo, p.Remaining)
	}
	span := 1 - lo
	dt := t1.Sub(t0).Seconds()
	y := func(v float64) float64 { return 2 + (1-v)/span*float64(height-4) }
	var line strings.Builder
	x := 2.0
	for _, p := range points {
		x = 2.0
		if dt > 0 {
			x += min(max(p.At.Sub(t0).Seconds()/dt, 0), 1) * float64(width-4)
		}
		fmt.Fprintf(&line, "%.1f,%.1f ", x, y(p.Remaining))
	}
	if len(points) == 1 {
		fmt.Fprintf(&line, "%d,%.1f", width-2, y(points[0].Remaining))
	}
	class := "burn-line"
	if points[len(points)-1].Remaining < 0 {
		class += " over"
	}
	mark := ""
	if svgClass != "burn" {
		mark = fmt.Sprintf(`<circle cx="%.1f" cy="%.1f" r="3" class="%s"/>`, x, y(points[len(points)-1].Remaining), class)
	}
	return template.HTML(fmt.Sprintf(`<svg class="%s" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="error budget remaining"><line x1="0" x2="%d" y1="%.1f" y2="%.1f" class="burn-zero"/><polyline points="%s" class="%s"/>%s</svg>`,
		svgClass, width, height, width, height, width, y(0), y(0), strings.TrimSpace(line.String()), class, mark))
}

// Ratio shows a ratio as a percentage with two decimals (truncated), or
// — for null.
func Ratio(r *float64) string {
	if r == nil {
		return "—"
	}
	return strconv.FormatFloat(math.Floor(*r*10000)/100, 'f', 2, 64) + "%"
}

// Percent shows an uptime ratio: 99.93%, 100%, or — without runs. Two
// decimals, truncated rather than rounded, so 99.999% never reads 100%.
func Percent(u client.Uptime) string {
	if u.Ratio == nil {
		return "—"
	}
	if *u.Ratio >= 1 {
		return "100%"
	}
	return strconv.FormatFloat(math.Floor(*u.Ratio*10000)/100, 'f', 2, 64) + "%"
}

var funcs = template.FuncMap{
	"t":          T,
	"spark":      Sparkline,
	"runbar":     RunBar,
	"pct":        Percent,
	"ratio":      Ratio,
	"burn":       BurnChart,
	"burnWindow": BurnChartWindow,
	// rate shows a burn rate (14.4×), or — for null.
	"rate": func(r *float64) string {
		if r == nil {
			return "—"
		}
		return strconv.FormatFloat(math.Round(*r*100)/100, 'f', -1, 64) + "×"
	},
	"ago":   Ago,
	"until": Until,
	"secs":  Secs,
	"ts":    Timestamp,
	"human": func(p Page, name string, v float64) string { return HumanValue(p.Lang, p.Zone, p.Now, name, v) },
	"raw":   Raw,
	"msecs": func(ms int64) float64 { return float64(ms) / 1000 },
	"diag":  DiagHTML,
	"sortedKeys": func(m map[string]string) []string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys
	},
	"join":     strings.Join,
	"contains": strings.Contains,
	// stepsLine is a runbook's steps as "kind name → kind name …"; the
	// kinds come from the runbook step-kind registry. A notify step names
	// its receiver.
	"stepsLine": func(lang string, steps []runbook.Step) string {
		parts := make([]string, len(steps))
		for i := range steps {
			parts[i] = steps[i].Kind() + " " + steps[i].Name
			if n, ok := steps[i].Config.(*runbook.NotifyStep); ok {
				parts[i] += " (" + T(lang, "runbook.receiver") + ": " + n.Receiver + ")"
			}
		}
		return strings.Join(parts, " → ")
	},
	"ptr":    func(f float64) *float64 { return &f },
	"mul100": func(f float64) float64 { return math.Round(f*1e6) / 1e4 },
	"deref": func(f *float64) float64 {
		if f == nil {
			return math.NaN()
		}
		return *f
	},
}
