// Package drill runs incident drills: a steady-state hypothesis, an
// injected fault, objectives, milestones measured from real events (check
// results, alerts, pages from the outbox, runbook journal), a rollback that
// always runs, and a report.
package drill

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/probes"
)

// Drill is a drill file.
type Drill struct {
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description" json:"description,omitempty"`
	// Hypothesis is what the drill expects to hold, in words.
	Hypothesis string `yaml:"hypothesis" json:"hypothesis"`
	// Checks are the checks the fault should make fail: their alerts, pages
	// and the runbook runs those start are the drill's (labelled
	// drill="true" and drill_id), and their results are the detect and
	// recover milestones.
	Checks      []string    `yaml:"checks" json:"checks"`
	SteadyState SteadyState `yaml:"steady_state" json:"steady_state"`
	Inject      []Action    `yaml:"inject" json:"inject"`
	// Duration is how long the fault stays in at most; the drill ends
	// earlier once the checks pass again (failover) and the page is out.
	Duration model.Duration `yaml:"duration" json:"duration"`
	// FailoverStep names the runbook step whose success is "traffic
	// switched" (default: the first step of the first runbook run).
	FailoverStep   string          `yaml:"failover_step" json:"failover_step,omitempty"`
	Objectives     Objectives      `yaml:"objectives" json:"objectives"`
	StopConditions []StopCondition `yaml:"stop_conditions" json:"stop_conditions,omitempty"`
	Rollback       []Action        `yaml:"rollback" json:"rollback,omitempty"`

	File string `yaml:"-" json:"file,omitempty"`
	// Source is the file's text as run (kept with the report).
	Source string `yaml:"-" json:"-"`
}

// SteadyState is what must hold before the fault and again at the end.
type SteadyState struct {
	Checks []string `yaml:"checks" json:"checks"`
	// Timeout bounds the wait for the steady state at the end (default 5m).
	Timeout model.Duration `yaml:"timeout" json:"timeout"`
}

// Action is one inject or rollback action: a runbook step of kind http,
// exec or wait, or simulate.
type Action struct {
	runbook.Step
	Simulate *Simulate `yaml:"simulate" json:"simulate,omitempty"`
}

// UnmarshalYAML decodes a step's keys and simulate, strictly (it replaces
// the embedded Step's, which knows no simulate).
func (a *Action) UnmarshalYAML(unmarshal func(any) error) error {
	return runbook.DecodeStep(unmarshal, &a.Step, "drill.Action", map[string]any{"simulate": &a.Simulate})
}

// MarshalJSON writes the step's fields, then simulate (it replaces the
// embedded Step's, which would drop simulate).
func (a Action) MarshalJSON() ([]byte, error) {
	b, err := a.Step.MarshalJSON()
	if err != nil || a.Simulate == nil {
		return b, err
	}
	var sim bytes.Buffer
	enc := json.NewEncoder(&sim)
	enc.SetEscapeHTML(false) // the calling encoder escapes as it is set to
	if err := enc.Encode(a.Simulate); err != nil {
		return nil, err
	}
	b = append(b[:len(b)-1], `,"simulate":`...)
	b = append(b, bytes.TrimSuffix(sim.Bytes(), []byte("\n"))...)
	return append(b, '}'), nil
}

// Simulate makes checks report failure inside the agent, without touching
// their targets, until the rollback (or the end of the drill).
type Simulate struct {
	Checks  []string      `yaml:"checks" json:"checks"`
	Reason  probes.Reason `yaml:"reason" json:"reason"`
	Message string        `yaml:"message" json:"message,omitempty"`
}

// Objectives bound the measured times, each from the fault's injection.
type Objectives struct {
	DetectWithin   model.Duration `yaml:"detect_within" json:"detect_within,omitempty"`
	PageWithin     model.Duration `yaml:"page_within" json:"page_within,omitempty"`
	FailoverWithin model.Duration `yaml:"failover_within" json:"failover_within,omitempty"`
	RecoverWithin  model.Duration `yaml:"recover_within" json:"recover_within,omitempty"`
}

// list returns the set objectives by measure name.
func (o Objectives) list() []struct {
	Measure string
	Limit   time.Duration
} {
	var out []struct {
		Measure string
		Limit   time.Duration
	}
	for _, x := range []struct {
		m string
		d model.Duration
	}{{MeasureDetect, o.DetectWithin}, {MeasurePage, o.PageWithin}, {MeasureFailover, o.FailoverWithin}, {MeasureRecover, o.RecoverWithin}} {
		if x.d > 0 {
			out = append(out, struct {
				Measure string
				Limit   time.Duration
			}{x.m, time.Duration(x.d)})
		}
	}
	return out
}

// StopCondition aborts the drill early: when a check fails, or when a
// PromQL expression over the agent's metrics returns anything.
type StopCondition struct {
	Check       string `yaml:"check" json:"check,omitempty"`
	Expr        string `yaml:"expr" json:"expr,omitempty"`
	Description string `yaml:"description" json:"description,omitempty"`
}

func (s StopCondition) String() string {
	what := "check " + s.Check + " fails"
	if s.Expr != "" {
		what = "expr " + s.Expr
	}
	if s.Description != "" {
		what = s.Description + " (" + what + ")"
	}
	return what
}

// Defaults.
const (
	DefaultDuration           = 10 * time.Minute
	DefaultSteadyStateTimeout = 5 * time.Minute
)

var exprParser = parser.NewParser(parser.Options{})

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// Parse decodes a drill strictly (unknown keys are errors), applies
// defaults and validates it; every problem is reported with its line.
func Parse(file string, data []byte) (*Drill, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, runbook.Error{File: file, Msg: err.Error()}
	}
	d := &Drill{File: file, Source: string(data), Duration: model.Duration(DefaultDuration),
		SteadyState: SteadyState{Timeout: model.Duration(DefaultSteadyStateTimeout)}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(d); err != nil {
		return nil, runbook.Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, runbook.Error{File: file, Line: runbook.LineOf(&doc, path), Msg: path + ": " + fmt.Sprintf(format, args...)})
	}
	if !nameRE.MatchString(d.Name) {
		add("name", "must be lower-case letters, digits, '_', '.', '-' (got %q)", d.Name)
	}
	if strings.TrimSpace(d.Hypothesis) == "" {
		add("hypothesis", "say what the drill expects to hold")
	}
	if len(d.Checks) == 0 {
		add("checks", "name the checks the fault should make fail")
	}
	if len(d.Inject) == 0 {
		add("inject", "a drill needs at least one action that injects the fault")
	}
	if d.Duration <= 0 {
		add("duration", "must be positive")
	}
	if d.SteadyState.Timeout <= 0 {
		add("steady_state.timeout", "must be positive")
	}
	for i, sc := range d.StopConditions {
		path := fmt.Sprintf("stop_conditions.%d", i)
		switch {
		case (sc.Check == "") == (sc.Expr == ""):
			add(path, "set exactly one of check and expr")
		case sc.Check != "" && slices.Contains(d.Checks, sc.Check):
			add(path+".check", "%q is a check the fault should fail; a stop condition watches something the drill must not break", sc.Check)
		case sc.Expr != "":
			if _, err := exprParser.ParseExpr(sc.Expr); err != nil {
				add(path+".expr", "%v", err)
			}
		}
	}
	for _, list := range []struct {
		key     string
		actions []Action
	}{{"inject", d.Inject}, {"rollback", d.Rollback}} {
		for i := range list.actions {
			a := &list.actions[i]
			path := fmt.Sprintf("%s.%d", list.key, i)
			if a.Name == "" {
				a.Name = fmt.Sprintf("%s-%d", list.key, i+1)
			}
			if a.Simulate != nil {
				if a.Step.Kind() != "" {
					add(path, "an action is simulate or one step kind, not both")
					continue
				}
				if list.key == "rollback" {
					add(path+".simulate", "simulate injects; the rollback ends it by itself")
				}
				if len(a.Simulate.Checks) == 0 {
					add(path+".simulate.checks", "name the checks to fail")
				}
				if a.Simulate.Reason == "" {
					a.Simulate.Reason = probes.ReasonError
				}
				if !a.Simulate.Reason.Known() || a.Simulate.Reason == probes.ReasonNone {
					add(path+".simulate.reason", "%q is not a failure reason vigil reports", a.Simulate.Reason)
				}
				continue
			}
			switch a.Step.Kind() {
			case "http", "exec", "wait":
			case "":
				add(path, "an action is one of http, exec, wait, simulate")
				continue
			default:
				add(path, "%s steps belong in runbooks; a drill action is http, exec, wait or simulate", a.Step.Kind())
				continue
			}
			for _, e := range runbook.ValidateStep(&a.Step, list.key) {
				add(path+"."+strings.SplitN(e, ":", 2)[0], "%s", strings.TrimSpace(strings.SplitN(e, ":", 2)[1]))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return d, nil
}

// Load reads and parses a drill file.
func Load(path string) (*Drill, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read drill: %w", err)
	}
	return Parse(path, data)
}

// Validate checks the drill against the agent's configured checks.
func (d *Drill) Validate(known func(check string) bool) error {
	var errs []error
	bad := func(where, name string) {
		errs = append(errs, fmt.Errorf("%s: %s names check %q, which is not configured", d.File, where, name))
	}
	for _, c := range d.Checks {
		if !known(c) {
			bad("checks", c)
		}
	}
	for _, c := range d.SteadyState.Checks {
		if !known(c) {
			bad("steady_state.checks", c)
		}
	}
	for _, sc := range d.StopConditions {
		if sc.Check != "" && !known(sc.Check) {
			bad("stop_conditions", sc.Check)
		}
	}
	for _, a := range d.Inject {
		if a.Simulate != nil {
			for _, c := range a.Simulate.Checks {
				if !known(c) {
					bad("inject simulate", c)
				}
			}
		}
	}
	return errors.Join(errs...)
}
