// Package runbook runs declarative runbooks — the operations documents'
// emergency plans (switch to the standby issuer, re-trigger sync) — when an
// alert fires or a person asks, with the rails that make automated failover
// trustworthy: preconditions, per-step timeouts and retries, rollback,
// cooldowns, approvals, dry runs, one run at a time per target (across a
// fleet with etcd), and a journal of every transition.
//
// This file holds the runbook file format and its validation.
package runbook

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/notify/route"
)

// Mode says how much a runbook may do on its own.
type Mode string

// Modes.
const (
	// Enforce runs the steps as soon as the trigger fires.
	Enforce Mode = "enforce"
	// Approve waits for a person before the first step.
	Approve Mode = "approve"
	// DryRun records the plan with every rendered step and runs nothing.
	DryRun Mode = "dry_run"
)

// OnFailure says what a failed step does to the run.
type OnFailure string

// Failure policies.
const (
	Abort    OnFailure = "abort"
	Continue OnFailure = "continue"
	Rollback OnFailure = "rollback"
)

// Runbook is one runbook file.
type Runbook struct {
	Name        string  `yaml:"name" json:"name"`
	Description string  `yaml:"description" json:"description,omitempty"`
	PlaybookURL string  `yaml:"playbook_url" json:"playbook_url,omitempty"`
	Trigger     Trigger `yaml:"trigger" json:"trigger"`
	Mode        Mode    `yaml:"mode" json:"mode"`
	// Target names what the runbook acts on (a template over the alert's
	// labels); cooldowns and the one-run-at-a-time lock are per runbook
	// and target. Default: the runbook name (one target).
	Target string `yaml:"target" json:"target,omitempty"`
	// Cooldown after a run during which a new trigger is recorded as
	// blocked instead of running (default 30m).
	Cooldown model.Duration `yaml:"cooldown" json:"cooldown"`
	// ApprovalTimeout bounds the wait for a person in approve mode (default 15m).
	ApprovalTimeout model.Duration `yaml:"approval_timeout" json:"approval_timeout"`
	// Resumable declares every step idempotent: a run interrupted by a
	// crash may resume at the step it was in. Otherwise it is marked
	// interrupted and left for a person.
	Resumable     bool   `yaml:"resumable" json:"resumable"`
	Preconditions []Step `yaml:"preconditions" json:"preconditions,omitempty"`
	Steps         []Step `yaml:"steps" json:"steps"`
	Rollback      []Step `yaml:"rollback" json:"rollback,omitempty"`
	// OnResolve names a runbook to run (approve mode unless it says
	// otherwise) when the triggering alert resolves — e.g. a failback.
	OnResolve string `yaml:"on_resolve" json:"on_resolve,omitempty"`

	// File is where the runbook came from.
	File string `yaml:"-" json:"file"`
}

// Trigger selects the alerts that start a runbook.
type Trigger struct {
	// Alert is the alert name; empty with Manual set means by hand only.
	Alert    string         `yaml:"alert" json:"alert,omitempty"`
	Matchers route.Matchers `yaml:"matchers" json:"matchers,omitempty"`
	Manual   bool           `yaml:"manual" json:"manual,omitempty"`
}

// Step is one step: a kind's config (http, exec, check, ... — see
// StepKinds) and what every step has. In a file the config sits under its
// kind's key; exactly one kind per step.
type Step struct {
	Name string
	// Config is the config of the step's kind, as the kind's registration
	// makes it (*HTTPStep, *ExecStep, *CheckStep, *model.Duration for wait,
	// *NotifyStep, *ApproveStep); nil when the step names no kind.
	Config any

	Timeout   model.Duration
	Retry     Retry
	OnFailure OnFailure

	// kinds counts the kind keys the file gave the step: validation
	// wants exactly one (Config holds the first).
	kinds int
}

// Kind is the step's kind ("" for none).
func (s *Step) Kind() string {
	if k := kindOf(s.Config); k != nil {
		return k.key
	}
	return ""
}

// Retry repeats a failed step.
type Retry struct {
	Count   int            `yaml:"count" json:"count,omitempty"`
	Backoff model.Duration `yaml:"backoff" json:"backoff,omitempty"`
}

// lineError is a decoding error at a line of the file.
type lineError struct {
	line int
	err  error
}

func (e lineError) Error() string { return e.err.Error() }
func (e lineError) Unwrap() error { return e.err }

// Defaults.
const (
	DefaultCooldown        = 30 * time.Minute
	DefaultApprovalTimeout = 15 * time.Minute
	DefaultStepTimeout     = 30 * time.Second
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// Error is a problem in a runbook file, with its position when known.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Parse decodes a runbook strictly (unknown keys are errors), applies
// defaults and validates it; every problem is reported.
func Parse(file string, data []byte) (*Runbook, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Error{File: file, Msg: err.Error()}
	}
	rb := &Runbook{Mode: Enforce, Cooldown: model.Duration(DefaultCooldown), ApprovalTimeout: model.Duration(DefaultApprovalTimeout), File: file}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(rb); err != nil {
		var le lineError
		if errors.As(err, &le) {
			return nil, Error{File: file, Line: le.line, Msg: le.Error()}
		}
		return nil, Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var errs []error
	add := func(path string, format string, args ...any) {
		errs = append(errs, Error{File: file, Line: lineOf(&doc, path), Msg: path + ": " + fmt.Sprintf(format, args...)})
	}
	if !nameRE.MatchString(rb.Name) {
		add("name", "must be lower-case letters, digits, '_', '.', '-' (got %q)", rb.Name)
	}
	switch rb.Mode {
	case Enforce, Approve, DryRun:
	default:
		add("mode", "must be enforce, approve or dry_run (got %q)", rb.Mode)
	}
	if rb.Trigger.Alert == "" && !rb.Trigger.Manual {
		add("trigger", "name an alert, or set manual: true for a runbook run only by hand")
	}
	for i, m := range rb.Trigger.Matchers {
		if _, err := route.ParseMatcher(m); err != nil {
			add(fmt.Sprintf("trigger.matchers.%d", i), "%v", err)
		}
	}
	if rb.Target != "" {
		if _, err := parseTemplate(rb.Target); err != nil {
			add("target", "%v", err)
		}
	}
	if rb.Cooldown < 0 {
		add("cooldown", "must not be negative")
	}
	if len(rb.Steps) == 0 {
		add("steps", "a runbook needs at least one step")
	}
	for _, list := range []struct {
		key   string
		steps []Step
	}{{"preconditions", rb.Preconditions}, {"steps", rb.Steps}, {"rollback", rb.Rollback}} {
		for i := range list.steps {
			s := &list.steps[i]
			path := fmt.Sprintf("%s.%d", list.key, i)
			if s.Name == "" {
				s.Name = fmt.Sprintf("%s-%d", list.key, i+1)
			}
			for _, e := range s.validate(list.key) {
				add(path+"."+e.field, "%s", e.msg)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rb, nil
}

// Load reads and parses a runbook file.
func Load(path string) (*Runbook, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read runbook: %w", err)
	}
	return Parse(path, data)
}

type fieldErr struct{ field, msg string }

func (s *Step) validate(list string) []fieldErr {
	var errs []fieldErr
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldErr{field, fmt.Sprintf(format, args...)})
	}
	n := s.kinds
	if n == 0 && s.Config != nil {
		n = 1 // built in code
	}
	k := kindOf(s.Config)
	if n != 1 || k == nil {
		bad("name", "a step has exactly one of %s (step %q has %d)", strings.Join(StepKinds(), ", "), s.Name, n)
		return errs
	}
	if s.Timeout == 0 {
		s.Timeout = model.Duration(DefaultStepTimeout)
	}
	if s.Timeout < 0 {
		bad("timeout", "must be positive")
	}
	switch s.OnFailure {
	case "":
		s.OnFailure = Abort
	case Abort, Continue, Rollback:
	default:
		bad("on_failure", "must be abort, continue or rollback (got %q)", s.OnFailure)
	}
	if list == "rollback" && s.OnFailure == Rollback {
		bad("on_failure", "a rollback step cannot roll back")
	}
	if s.Retry.Count < 0 || s.Retry.Count > 10 {
		bad("retry.count", "must be between 0 and 10")
	}
	return append(errs, validateKind(k, s.Config)...)
}

// CheckRefs reports the first step that names a check or a paging
// receiver the agent's config does not define.
func (rb *Runbook) CheckRefs(known Known) error {
	for _, list := range [][]Step{rb.Preconditions, rb.Steps, rb.Rollback} {
		for _, s := range list {
			if k := kindOf(s.Config); k != nil {
				if err := k.refs(s.Config, known); err != nil {
					return fmt.Errorf("%s: step %q %w", rb.File, s.Name, err)
				}
			}
		}
	}
	return nil
}

// ValidateStep applies a step's defaults and returns its problems, each
// "field: message" relative to the step (drills' actions are steps too).
func ValidateStep(s *Step, list string) []string {
	var out []string
	for _, e := range s.validate(list) {
		out = append(out, e.field+": "+e.msg)
	}
	return out
}

// LineOf finds the line of a dotted key path ("steps.2.http") in a parsed
// YAML document (0 when absent).
func LineOf(doc *yaml.Node, path string) int { return lineOf(doc, path) }

// lineOf finds the line of a dotted key path in the document (0 when absent).
func lineOf(doc *yaml.Node, path string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(path, ".") {
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		case yaml.SequenceNode:
			var idx int
			if _, err := fmt.Sscanf(part, "%d", &idx); err != nil || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		default:
			return line
		}
	}
	return line
}

// parseTemplate parses a step field template with the escaping functions.
func parseTemplate(s string) (*template.Template, error) {
	return template.New("").Funcs(templateFuncs).Option("missingkey=zero").Parse(s)
}
