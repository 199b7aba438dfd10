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
	"net/http"
	"os"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/probes"
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

// Step is one step; exactly one of the kinds is set.
type Step struct {
	Name    string          `yaml:"name" json:"name"`
	HTTP    *HTTPStep       `yaml:"http" json:"http,omitempty"`
	Exec    *ExecStep       `yaml:"exec" json:"exec,omitempty"`
	Check   *CheckStep      `yaml:"check" json:"check,omitempty"`
	Wait    *model.Duration `yaml:"wait" json:"wait,omitempty"`
	Notify  *NotifyStep     `yaml:"notify" json:"notify,omitempty"`
	Approve *ApproveStep    `yaml:"approve" json:"approve,omitempty"`

	Timeout   model.Duration `yaml:"timeout" json:"timeout"`
	Retry     Retry          `yaml:"retry" json:"retry"`
	OnFailure OnFailure      `yaml:"on_failure" json:"on_failure"`
}

// Kind is the step's kind.
func (s *Step) Kind() string {
	switch {
	case s.HTTP != nil:
		return "http"
	case s.Exec != nil:
		return "exec"
	case s.Check != nil:
		return "check"
	case s.Wait != nil:
		return "wait"
	case s.Notify != nil:
		return "notify"
	case s.Approve != nil:
		return "approve"
	}
	return ""
}

// Retry repeats a failed step.
type Retry struct {
	Count   int            `yaml:"count" json:"count,omitempty"`
	Backoff model.Duration `yaml:"backoff" json:"backoff,omitempty"`
}

// HTTPStep calls an API (the gateway's switch, an issuer's resync).
type HTTPStep struct {
	Method  string            `yaml:"method" json:"method"`
	URL     string            `yaml:"url" json:"url"`
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
	// Body is a template; label values in it are JSON-escaped when
	// BodyFormat is json (the default when it starts with { or [).
	Body         string `yaml:"body" json:"body,omitempty"`
	ExpectStatus []int  `yaml:"expect_status" json:"expect_status,omitempty"`
	// IdempotencyKey sends Idempotency-Key: <run id>-<step> so a retried or
	// resumed step is recognised by a target that supports it.
	IdempotencyKey bool `yaml:"idempotency_key" json:"idempotency_key,omitempty"`
	// FencingHeader carries the lock's fencing token (default
	// X-Vigil-Fencing-Token) so a target can refuse a stale holder.
	FencingHeader string `yaml:"fencing_header" json:"fencing_header,omitempty"`
}

// ExecStep runs a program with an argument list — never a shell string.
// The program gets a minimal environment (see execEnv), never the agent's.
type ExecStep struct {
	Argv []string `yaml:"argv" json:"argv"`
	Dir  string   `yaml:"dir" json:"dir,omitempty"`
	// MaxOutput bounds the captured stdout+stderr (default 64 KiB).
	MaxOutput int `yaml:"max_output" json:"max_output,omitempty"`
	// Env adds variables with literal values.
	Env map[string]string `yaml:"env" json:"env,omitempty"`
	// SecretEnv passes secrets, each from an environment reference of the
	// agent ("${PG_PASSWORD}") or a file ({file: /etc/vigil/pg.pass});
	// never journaled, and their values are redacted from the output.
	SecretEnv map[string]SecretRef `yaml:"secret_env" json:"secret_env,omitempty"`
}

// SecretRef is a secret_env value: "${NAME}" from the agent's environment,
// or {file: PATH} (one trailing newline dropped). It marshals redacted.
type SecretRef struct {
	probes.Secret
}

func (s *SecretRef) UnmarshalYAML(n *yaml.Node) error {
	// yaml.v3 returns an unmarshaler's error as it is, without the
	// position it gives its own: Parse reads the line from lineError.
	if n.Kind != yaml.MappingNode {
		if err := s.Secret.UnmarshalYAML(n); err != nil {
			return lineError{line: n.Line, err: fmt.Errorf("secret_env: %w", err)}
		}
		return nil
	}
	var f struct {
		File string `yaml:"file"`
	}
	if len(n.Content) != 2 || n.Content[0].Value != "file" {
		return lineError{line: n.Line, err: errors.New("secret_env: expected ${NAME} or {file: PATH}")}
	}
	if err := n.Decode(&f); err != nil {
		return lineError{line: n.Line, err: fmt.Errorf("secret_env: %w", err)}
	}
	v, err := probes.ReadSecretFile(f.File)
	if err != nil {
		return lineError{line: n.Line, err: fmt.Errorf("secret_env: %w", err)}
	}
	s.Secret = v
	return nil
}

// lineError is a decoding error at a line of the file.
type lineError struct {
	line int
	err  error
}

func (e lineError) Error() string { return e.err.Error() }
func (e lineError) Unwrap() error { return e.err }

// CheckStep runs a configured check (now, or until it passed Successes
// times in a row within Within).
type CheckStep struct {
	Name      string         `yaml:"name" json:"name"`
	Successes int            `yaml:"successes" json:"successes,omitempty"`
	Within    model.Duration `yaml:"within" json:"within,omitempty"`
	Interval  model.Duration `yaml:"interval" json:"interval,omitempty"`
}

// NotifyStep sends a message through a paging receiver.
type NotifyStep struct {
	Receiver string `yaml:"receiver" json:"receiver"`
	Message  string `yaml:"message" json:"message"`
}

// ApproveStep pauses until a person approves (API/CLI).
type ApproveStep struct {
	Message string         `yaml:"message" json:"message,omitempty"`
	Timeout model.Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// Defaults.
const (
	DefaultCooldown        = 30 * time.Minute
	DefaultApprovalTimeout = 15 * time.Minute
	DefaultStepTimeout     = 30 * time.Second
	DefaultMaxOutput       = 64 << 10
	DefaultFencingHeader   = "X-Vigil-Fencing-Token"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// envNameRE is a portable environment variable name.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

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
	kinds := 0
	for _, set := range []bool{s.HTTP != nil, s.Exec != nil, s.Check != nil, s.Wait != nil, s.Notify != nil, s.Approve != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		bad("name", "a step has exactly one of http, exec, check, wait, notify, approve (step %q has %d)", s.Name, kinds)
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
	templ := func(field, v string) {
		if _, err := parseTemplate(v); err != nil {
			bad(field, "%v", err)
		}
	}
	switch {
	case s.HTTP != nil:
		h := s.HTTP
		if h.Method == "" {
			h.Method = http.MethodPost
		}
		h.Method = strings.ToUpper(h.Method)
		if h.URL == "" {
			bad("http.url", "is required")
		}
		templ("http.url", h.URL)
		templ("http.body", h.Body)
		for k, v := range h.Headers {
			templ("http.headers."+k, v)
		}
		if len(h.ExpectStatus) == 0 {
			h.ExpectStatus = []int{200, 201, 202, 204}
		}
		if h.FencingHeader == "" {
			h.FencingHeader = DefaultFencingHeader
		}
	case s.Exec != nil:
		if len(s.Exec.Argv) == 0 || s.Exec.Argv[0] == "" {
			bad("exec.argv", "needs the program and its arguments as a list")
		}
		for i, a := range s.Exec.Argv {
			templ(fmt.Sprintf("exec.argv.%d", i), a)
		}
		if s.Exec.MaxOutput == 0 {
			s.Exec.MaxOutput = DefaultMaxOutput
		}
		for k := range s.Exec.Env {
			if !envNameRE.MatchString(k) || strings.HasPrefix(k, "VIGIL_") {
				bad("exec.env."+k, "must be a variable name (letters, digits, _) not starting with VIGIL_")
			}
		}
		for k := range s.Exec.SecretEnv {
			if !envNameRE.MatchString(k) || strings.HasPrefix(k, "VIGIL_") {
				bad("exec.secret_env."+k, "must be a variable name (letters, digits, _) not starting with VIGIL_")
			}
			if _, dup := s.Exec.Env[k]; dup {
				bad("exec.secret_env."+k, "is also set under env")
			}
		}
	case s.Check != nil:
		if s.Check.Name == "" {
			bad("check.name", "names a configured check")
		}
		if s.Check.Successes == 0 {
			s.Check.Successes = 1
		}
		if s.Check.Successes > 1 && s.Check.Within == 0 {
			bad("check.within", "is required with successes > 1")
		}
		if s.Check.Interval == 0 {
			s.Check.Interval = model.Duration(5 * time.Second)
		}
	case s.Wait != nil:
		if *s.Wait <= 0 {
			bad("wait", "must be positive")
		}
	case s.Notify != nil:
		if s.Notify.Receiver == "" {
			bad("notify.receiver", "is required")
		}
		templ("notify.message", s.Notify.Message)
	case s.Approve != nil:
		if s.Approve.Timeout == 0 {
			s.Approve.Timeout = model.Duration(DefaultApprovalTimeout)
		}
	}
	return errs
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
