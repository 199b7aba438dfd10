package slo

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/rules"
)

// Groups are the SLOs' rules of cfg as the agent evaluates them, with the
// config's evaluation interval and external labels.
func Groups(cfg *config.Config) ([]*rules.Group, error) {
	text, err := Rules(cfg.SLOs)
	if err != nil || text == nil {
		return nil, err
	}
	return rules.ParseGroups(RulesFile, text, time.Duration(cfg.Global.EvaluationInterval), cfg.Global.Labels, "", nil)
}

// RulesFile is the name the generated rules go by in the agent (rule
// keys, the rules API, errors).
const RulesFile = "<slos>"

// burnWindow is one of the SRE workbook's multiwindow, multi-burn-rate
// alert conditions (chapter 5, table 5-8): the alert fires while the error
// ratio over both the long and the short window is above burn times the
// error budget. budget is the share of the whole window's budget spent in
// the long window at that rate: 2% in 1 hour and 5% in 6 hours; for a
// 30-day window that is a burn rate of 14.4 and 6.
type burnWindow struct {
	long, short time.Duration
	budget      float64
}

var pageWindows = []burnWindow{
	{long: time.Hour, short: 5 * time.Minute, budget: 0.02},
	{long: 6 * time.Hour, short: 30 * time.Minute, budget: 0.05},
}

// Windows are the rate windows the recording rules compute, shortest first.
var Windows = func() []time.Duration {
	seen := map[time.Duration]bool{}
	var ws []time.Duration
	for _, w := range pageWindows {
		for _, d := range []time.Duration{w.short, w.long} {
			if !seen[d] {
				seen[d] = true
				ws = append(ws, d)
			}
		}
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i] < ws[j] })
	return ws
}()

// BurnRate is the burn-rate threshold of w for an SLO window.
func (w burnWindow) BurnRate(window time.Duration) float64 {
	return w.budget * window.Hours() / w.long.Hours()
}

// RecordName is the recording rule of an SLO's error ratio over w, as
// Sloth and the SRE workbook name it.
func RecordName(w time.Duration) string {
	return "slo:sli_error:ratio_rate" + model.Duration(w).String()
}

// checksMatcher selects the SLO's checks' series.
func checksMatcher(checks []string) string {
	quoted := make([]string, len(checks))
	for i, c := range checks {
		quoted[i] = regexp.QuoteMeta(c)
	}
	sort.Strings(quoted)
	return `check=~"` + strings.ReplaceAll(strings.ReplaceAll(strings.Join(quoted, "|"), `\`, `\\`), `"`, `\"`) + `"`
}

// ruleFile is the rule-file YAML, as Prometheus reads it.
type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name  string `yaml:"name"`
	Rules []rule `yaml:"rules"`
}

type rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// formatFloat prints a value the shortest way that reads back exactly.
func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// formatThreshold prints a threshold to 10 significant digits: 14.4 *
// (1 - 0.999) is 0.0144, not 0.014400000000000013.
func formatThreshold(f float64) string { return strconv.FormatFloat(f, 'g', 10, 64) }

// Rules renders the SLOs' recording and alerting rules as a Prometheus
// rule file: per SLO, the error ratio of its checks' runs over each of
// Windows from vigil_check_runs_total, and one alert, SLOErrorBudgetBurn
// (severity page), for the two burn-rate conditions. The same file works
// in vigil (which evaluates it) and in a central Prometheus scraping
// vigil (`vigil slo rules` prints it). nil for no SLOs.
func Rules(slos []config.SLO) ([]byte, error) {
	if len(slos) == 0 {
		return nil, nil
	}
	var f ruleFile
	for _, s := range slos {
		g := ruleGroup{Name: "slo:" + s.Name}
		sel := checksMatcher(s.Checks)
		for _, w := range Windows {
			r := model.Duration(w).String()
			expr := fmt.Sprintf(`sum(increase(vigil_check_runs_total{%s,result="failure"}[%s])) / sum(increase(vigil_check_runs_total{%s}[%s]))`,
				sel, r, sel, r)
			if s.SLI != nil {
				expr = fmt.Sprintf("(%s) / (%s)", config.SLIQuery(s.SLI.ErrorQuery, model.Duration(w)), config.SLIQuery(s.SLI.TotalQuery, model.Duration(w)))
			}
			g.Rules = append(g.Rules, rule{Record: RecordName(w), Expr: expr, Labels: map[string]string{"slo": s.Name}})
		}
		budget := 1 - s.Objective
		var conds []string
		for _, w := range pageWindows {
			th := formatThreshold(w.BurnRate(time.Duration(s.Window)) * budget)
			// At least two failed runs in the short window: one failed
			// run of a check that runs a few times an hour is already a
			// burn rate of hundreds, and a blip its recheck clears must
			// not page (as failure_threshold promises). increase()
			// extrapolates, so two failures read as about 2, one as
			// about 1.
			if s.SLI != nil {
				// A PromQL SLI counts events, not runs: no two-failures
				// guard (its traffic decides how noisy it is).
				conds = append(conds, fmt.Sprintf(`(%s{slo=%q} > %s and %s{slo=%q} > %s)`,
					RecordName(w.long), s.Name, th, RecordName(w.short), s.Name, th))
				continue
			}
			conds = append(conds, fmt.Sprintf(`(%s{slo=%q} > %s and %s{slo=%q} > %s and on () sum(increase(vigil_check_runs_total{%s,result="failure"}[%s])) > 1.5)`,
				RecordName(w.long), s.Name, th, RecordName(w.short), s.Name, th, sel, model.Duration(w.short)))
		}
		labels := map[string]string{"severity": "page"}
		for k, v := range s.Labels {
			labels[k] = v
		}
		labels["slo"] = s.Name
		desc := fmt.Sprintf("The checks of SLO %s (%s) fail fast enough to spend %.0f%% of its %s error budget in an hour or %.0f%% in six hours (and failed at least twice in the short window): {{ $value | humanizePercentage }} of runs failed over the long window.",
			s.Name, strings.Join(s.Checks, ", "), pageWindows[0].budget*100, model.Duration(s.Window), pageWindows[1].budget*100)
		if s.SLI != nil {
			desc = fmt.Sprintf("SLO %s fails fast enough to spend %.0f%% of its %s error budget in an hour or %.0f%% in six hours: {{ $value | humanizePercentage }} of its events were bad over the long window.",
				s.Name, pageWindows[0].budget*100, model.Duration(s.Window), pageWindows[1].budget*100)
		}
		g.Rules = append(g.Rules, rule{
			Alert:  BurnAlert,
			Expr:   strings.Join(conds, "\nor\n"),
			Labels: labels,
			Annotations: map[string]string{
				"summary":     fmt.Sprintf("SLO %s (objective %s over %s) is burning its error budget fast", s.Name, formatFloat(s.Objective), model.Duration(s.Window)),
				"description": desc,
			},
		})
		f.Groups = append(f.Groups, g)
	}
	out, err := yaml.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("render SLO rules: %w", err)
	}
	header := "# Generated by vigil from the slos: of its config: multiwindow, multi-burn-rate alerts\n" +
		"# (SRE workbook, chapter 5) over vigil_check_runs_total. Regenerate with `vigil slo rules`.\n"
	return append([]byte(header), out...), nil
}
