package config

import (
	"fmt"
	"regexp"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// SLO is an entry of slos: an objective for the share of some checks' runs
// that pass, over a rolling window. vigil computes its attainment and
// error budget from the store's hourly run counts, exports them, and
// evaluates multi-window multi-burn-rate alerts for it (package slo).
type SLO struct {
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description" json:"description,omitempty"`
	// Objective is the target share of passing runs, e.g. 0.999.
	Objective float64 `yaml:"objective" json:"objective"`
	// Window is the rolling window the objective holds over (default 30d).
	Window model.Duration `yaml:"window" json:"window"`
	// Checks are the checks whose runs are the SLI's events; or SLI.
	Checks []string `yaml:"checks" json:"checks,omitempty"`
	// SLI is a PromQL SLI over the agent's own series instead of checks'
	// runs (e.g. request and error lines counted by a logscan check).
	SLI *SLIQueries `yaml:"sli" json:"sli,omitempty"`
	// Labels are added to the SLO's burn-rate alerts (routing: team,
	// severity overrides).
	Labels map[string]string `yaml:"labels" json:"labels,omitempty"`
}

// SLIQueries are an SLI as two PromQL expressions over {{.window}}, as
// Sloth writes them: the rate of bad events and the rate of all events,
// per second.
type SLIQueries struct {
	ErrorQuery string `yaml:"error_query" json:"error_query"`
	TotalQuery string `yaml:"total_query" json:"total_query"`
}

// WindowVar is what an SLI query says for its window.
var windowVar = regexp.MustCompile(`\{\{\s*\.window\s*\}\}`)

// SLIQuery is q with its window filled in.
func SLIQuery(q string, window model.Duration) string {
	return windowVar.ReplaceAllString(q, window.String())
}

// DefaultSLOWindow is an SLO's window when it names none.
const DefaultSLOWindow = model.Duration(30 * 24 * time.Hour)

// MaxSLOWindow bounds an SLO's window: the hourly run counts are kept 35
// days by default (store.DefaultHourRetention), longer only when some SLO
// needs it, and a longer window makes every evaluation read more hours.
const MaxSLOWindow = model.Duration(90 * 24 * time.Hour)

// itemNode returns where a message about a list entry's field points: the
// field (field "" for the entry itself), else the list, else the root.
func itemNode(root, list *yaml.Node) func(i int, field string) *yaml.Node {
	return func(i int, field string) *yaml.Node {
		p := fmt.Sprint(i)
		if field != "" {
			p += "." + field
		}
		if n := lookupPath(list, p); n != nil {
			return n
		}
		if list != nil {
			return list
		}
		return root
	}
}

var sloName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func (d *decoder) validateSLOs(root *yaml.Node, cfg *Config) {
	list := lookupValue(root, "slos")
	at := itemNode(root, list)
	seen := map[string]bool{}
	for i := range cfg.SLOs {
		s := &cfg.SLOs[i]
		path := fmt.Sprintf("slos[%d]", i)
		switch {
		case s.Name == "":
			d.errorf(at(i, ""), path+".name", "required")
		case !sloName.MatchString(s.Name):
			d.errorf(at(i, "name"), path+".name", "%q: use letters, digits, '_', '.' and '-'", s.Name)
		case seen[s.Name]:
			d.errorf(at(i, "name"), path+".name", "duplicate SLO name %q", s.Name)
		}
		seen[s.Name] = true
		if !(s.Objective > 0 && s.Objective < 1) {
			d.errorf(at(i, "objective"), path+".objective", "must be a ratio between 0 and 1 exclusive, e.g. 0.999 for 99.9%%, got %v", s.Objective)
		}
		if s.Window == 0 {
			s.Window = DefaultSLOWindow
		}
		if s.Window < model.Duration(24*time.Hour) || s.Window > MaxSLOWindow {
			d.errorf(at(i, "window"), path+".window", "must be between 1d and %s, got %s", MaxSLOWindow, s.Window)
		}
		switch {
		case len(s.Checks) == 0 && s.SLI == nil:
			d.errorf(at(i, ""), path+".checks", "required: the checks whose runs the objective is about (or sli: with error_query and total_query)")
		case len(s.Checks) > 0 && s.SLI != nil:
			d.errorf(at(i, "sli"), path+".sli", "set checks or sli, not both")
		case s.SLI != nil:
			for field, q := range map[string]string{"error_query": s.SLI.ErrorQuery, "total_query": s.SLI.TotalQuery} {
				switch {
				case q == "":
					d.errorf(at(i, "sli"), path+".sli."+field, "required")
				case !windowVar.MatchString(q):
					d.errorf(at(i, "sli."+field), path+".sli."+field, "must use {{.window}} as its range, e.g. sum(rate(x[{{.window}}]))")
				default:
					if _, err := parser.NewParser(parser.Options{}).ParseExpr(SLIQuery(q, model.Duration(5*time.Minute))); err != nil {
						d.errorf(at(i, "sli."+field), path+".sli."+field, "%v", err)
					}
				}
			}
		}
		for j, c := range s.Checks {
			if !cfg.HasCheck(c) {
				d.errorf(at(i, fmt.Sprintf("checks.%d", j)), fmt.Sprintf("%s.checks[%d]", path, j), "no check named %q", c)
			}
		}
		d.validateLabels(lookupValue(lookupPath(list, fmt.Sprint(i)), "labels"), at(i, "labels"), path+".labels", s.Labels, false)
	}
}

// LongestSLOWindow is the longest window of the config's SLOs (0 for
// none): the store keeps hourly run counts at least that long.
func (c *Config) LongestSLOWindow() time.Duration {
	var w time.Duration
	for _, s := range c.SLOs {
		w = max(w, time.Duration(s.Window))
	}
	return w
}
