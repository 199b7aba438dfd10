package config

import (
	"fmt"
	"regexp"
	"time"

	"github.com/prometheus/common/model"
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
	// Checks are the checks whose runs are the SLI's events.
	Checks []string `yaml:"checks" json:"checks"`
	// Labels are added to the SLO's burn-rate alerts (routing: team,
	// severity overrides).
	Labels map[string]string `yaml:"labels" json:"labels,omitempty"`
}

// DefaultSLOWindow is an SLO's window when it names none.
const DefaultSLOWindow = model.Duration(30 * 24 * time.Hour)

// MaxSLOWindow bounds an SLO's window: the hourly run counts are kept 35
// days by default (store.DefaultHourRetention), longer only when some SLO
// needs it, and a longer window makes every evaluation read more hours.
const MaxSLOWindow = model.Duration(90 * 24 * time.Hour)

var sloName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func (d *decoder) validateSLOs(root *yaml.Node, cfg *Config) {
	list := lookupValue(root, "slos")
	at := func(i int, field string) *yaml.Node {
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
		if len(s.Checks) == 0 {
			d.errorf(at(i, ""), path+".checks", "required: the checks whose runs the objective is about")
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
