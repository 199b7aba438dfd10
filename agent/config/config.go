// Package config loads the agent's YAML config: defaults first, then a strict
// decode (unknown keys, wrong types and duplicates are errors), then
// validation. Every problem is reported at once as file:line:col so an
// operator fixes a bad file in one pass.
package config

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
)

// DefaultFile is the name reported for the embedded default config.
const DefaultFile = "<embedded default>"

//go:embed default.yml
var defaultYAML []byte

// DefaultYAML returns the embedded default config used when no file is given.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Config is the whole agent config.
type Config struct {
	Global Global `yaml:"global" json:"global"`
	// RuleFiles are globs of Prometheus rule files (relative to the config
	// file's directory when not absolute).
	RuleFiles FileGlobs `yaml:"rule_files" json:"rule_files,omitempty"`
	Checks    []Check   `yaml:"-" json:"checks"` // decoded by decodeCheck
	// Notify configures paging.
	Notify Notify `yaml:"notify" json:"notify"`
	// Runbooks are globs of runbook files (relative to the config file's
	// directory when not absolute).
	Runbooks FileGlobs `yaml:"runbooks" json:"runbooks,omitempty"`
	// RunbookLock says where runbook locks, cooldowns and the pause switch
	// live: this agent's store (local) or etcd, shared by a fleet.
	RunbookLock RunbookLock `yaml:"runbook_lock" json:"runbook_lock"`
	// Drills are globs of drill files (relative to the config file's
	// directory when not absolute).
	Drills FileGlobs `yaml:"drills" json:"drills,omitempty"`
	// SLOs are objectives for the share of passing runs of some checks.
	SLOs []SLO `yaml:"slos" json:"slos,omitempty"`
	// PublicStatus is the public status page's title and description.
	PublicStatus PublicStatus `yaml:"public_status" json:"public_status,omitzero"`
	// DrillReportsDir is where drill reports are written as Markdown and
	// JSON (default: drill-reports beside the store).
	DrillReportsDir string `yaml:"drill_reports_dir" json:"drill_reports_dir,omitempty"`
	// RemoteWrite are receivers the agent pushes its series to (push
	// mode); decoded by decodeRemoteWrite over DefaultRemoteWrite.
	RemoteWrite []RemoteWrite `yaml:"-" json:"remote_write,omitempty"`

	// File is where the config came from (DefaultFile for the embedded one).
	File string `yaml:"-" json:"-"`
}

// Global holds defaults for every check and agent-wide settings.
type Global struct {
	// Interval between runs of a passing check. The operations checklist is hourly.
	Interval model.Duration `yaml:"interval" json:"interval"`
	// Timeout of one run.
	Timeout model.Duration `yaml:"timeout" json:"timeout"`
	// RecheckInterval is used instead of Interval while a check fails, so an
	// outage is confirmed in minutes and a blip clears itself.
	RecheckInterval model.Duration `yaml:"recheck_interval" json:"recheck_interval"`
	// Jitter delays each run by a random amount in [0, jitter).
	Jitter model.Duration `yaml:"jitter" json:"jitter"`
	// StartupSplay spreads the first runs over [0, min(splay, interval)) so a
	// restart does not fire every check at once.
	StartupSplay model.Duration `yaml:"startup_splay" json:"startup_splay"`
	// MaxConcurrency bounds how many checks run at the same time.
	MaxConcurrency int `yaml:"max_concurrency" json:"max_concurrency"`
	// ScheduleGranularity aligns scheduled runs to whole steps of it, so
	// the checks due within one step start together on one wake-up (0:
	// exact start times). Applies to checks whose interval is at least
	// ten steps and a whole number of them.
	ScheduleGranularity model.Duration `yaml:"schedule_granularity" json:"schedule_granularity"`
	// Labels are attached to everything the agent sends out (alerts, pages).
	Labels map[string]string `yaml:"labels" json:"labels,omitempty"`
	// EvaluationInterval is how often the agent scrapes its own metrics into
	// its sample store and the default interval of rule groups.
	EvaluationInterval model.Duration `yaml:"evaluation_interval" json:"evaluation_interval"`
	// SampleRetention is how long the sample store keeps samples.
	SampleRetention model.Duration `yaml:"sample_retention" json:"sample_retention"`
	// Timezone is the IANA zone the status page shows times in (empty:
	// the host's local zone).
	Timezone string `yaml:"timezone" json:"timezone,omitempty"`
	// Location is Timezone loaded (time.Local when Timezone is empty); set
	// by Parse.
	Location *time.Location `yaml:"-" json:"-"`
}

// Zone is where times are shown: Location, or the host's local zone.
func (g Global) Zone() *time.Location {
	if g.Location == nil {
		return time.Local
	}
	return g.Location
}

// Check is one configured check. Interval, Timeout and RecheckInterval are
// resolved against Global after loading, so they are never zero.
type Check struct {
	Name            string         `yaml:"name" json:"name"`
	Type            string         `yaml:"type" json:"type"`
	Interval        model.Duration `yaml:"interval" json:"interval"`
	Timeout         model.Duration `yaml:"timeout" json:"timeout"`
	RecheckInterval model.Duration `yaml:"recheck_interval" json:"recheck_interval"`
	// FailureThreshold is how many failed runs in a row (the first and its
	// rechecks) make the check fail in its metrics, and so in alerts: a
	// blip that a recheck clears never pages. 0 or 1: the first failure.
	FailureThreshold int               `yaml:"failure_threshold" json:"failure_threshold,omitempty"`
	Labels           map[string]string `yaml:"labels" json:"labels,omitempty"`
	// DependsOn names checks this one cannot pass without (the network
	// path to the tax authority, the database): while one of them fails,
	// this check's failures are reported as dependency_failed (its own
	// reason kept in the message) and its alerts are held back, resolves
	// excepted.
	DependsOn []string `yaml:"depends_on" json:"depends_on,omitempty"`

	// Spec is the type's own section (the key named like the type) with the
	// family's defaults applied.
	Spec probes.Config `yaml:"-" json:"spec"`
	// Line is where the check is defined, for messages.
	Line int `yaml:"-" json:"-"`
}

// Fingerprint identifies a check's effective configuration; a reload keeps a
// check running untouched when its fingerprint is unchanged. Secrets marshal
// redacted, so their values are hashed in separately: a rotated password
// restarts the check.
func (c *Check) Fingerprint() string {
	b, err := json.Marshal(c)
	if err != nil {
		// Spec types are plain data; failing to marshal one is a programming error.
		panic(fmt.Sprintf("config: fingerprint of check %q: %v", c.Name, err))
	}
	h := sha256.New()
	h.Write(b)
	walkSecrets(reflect.ValueOf(c.Spec), func(s confkit.Secret) {
		h.Write([]byte{0})
		h.Write([]byte(s.Reveal()))
	}, nil)
	return hex.EncodeToString(h.Sum(nil))
}

var secretType = reflect.TypeFor[confkit.Secret]()

// walkSecrets calls fn for every Secret inside v, in field order, and
// file (when not nil) for every *_file field that names a secret.
func walkSecrets(v reflect.Value, fn func(confkit.Secret), file func(path string)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkSecrets(v.Elem(), fn, file)
		}
	case reflect.Struct:
		if v.Type() == secretType {
			fn(v.Interface().(confkit.Secret))
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if file != nil && isSecretFileField(f) {
				if path := v.Field(i).String(); path != "" {
					file(path)
				}
				continue
			}
			walkSecrets(v.Field(i), fn, file)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkSecrets(v.Index(i), fn, file)
		}
	case reflect.Map:
		// In key order, so the walk is the same every time (a receiver's
		// integrations are a map by kind).
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			walkSecrets(v.MapIndex(k), fn, file)
		}
	}
}

func defaults() Config {
	return Config{Notify: defaultNotify(), RunbookLock: RunbookLock{Backend: "local"}, Global: Global{
		Interval:            model.Duration(time.Hour),
		Timeout:             model.Duration(30 * time.Second),
		RecheckInterval:     model.Duration(30 * time.Second),
		StartupSplay:        model.Duration(10 * time.Second),
		MaxConcurrency:      16,
		ScheduleGranularity: model.Duration(time.Second),

		EvaluationInterval: model.Duration(30 * time.Second),
		SampleRetention:    model.Duration(24 * time.Hour),
	}}
}

// Load reads and parses a config file. An empty path loads the embedded default.
func Load(path string) (*Config, error) {
	if path == "" {
		return Parse(DefaultFile, defaultYAML)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a config. A non-nil error is Errors listing
// every problem found.
func Parse(file string, data []byte) (*Config, error) {
	d := &decoder{file: file}
	cfg := defaults()
	cfg.File = file

	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := 0
		msg := yamlMessage(err)
		if l, rest, ok := parseLinePrefix(strings.TrimPrefix(err.Error(), "yaml: ")); ok {
			line, msg = l, rest
		}
		d.errs = append(d.errs, Error{File: file, Line: line, Col: 1, Msg: msg})
		return nil, d.errs
	}
	if len(doc.Content) == 0 {
		d.errs = append(d.errs, Error{File: file, Msg: "config is empty"})
		return nil, d.errs
	}
	root := doc.Content[0]

	var checkNodes []*yaml.Node
	d.decodeStruct(root, reflect.ValueOf(&cfg).Elem(), "", extraKeys{Names: []string{"checks", "remote_write"}, Claim: func(k, v *yaml.Node) bool {
		if k.Value == "remote_write" {
			cfg.RemoteWrite = d.decodeRemoteWrite(v)
			return true
		}
		if k.Value != "checks" {
			return false
		}
		if v.Kind != yaml.SequenceNode {
			if v.Tag != "!!null" {
				d.errorf(v, "checks", "expected a list, got %s", kindName(v))
			}
			return true
		}
		checkNodes = v.Content
		return true
	}})
	cfg.Checks = make([]Check, 0, len(checkNodes))
	for i, n := range checkNodes {
		if c, ok := d.decodeCheck(n, fmt.Sprintf("checks[%d]", i), &cfg.Global); ok {
			cfg.Checks = append(cfg.Checks, c)
		}
	}
	d.validateGlobal(root, &cfg.Global)
	d.validateChecks(checkNodes, cfg.Checks)
	d.validateNotify(root, &cfg.Notify)
	d.validateRunbookLock(root, &cfg.RunbookLock)
	d.validateGlobs(root, &cfg)
	d.validateSLOs(root, &cfg)
	d.validatePublicStatus(root, &cfg.PublicStatus)
	d.validateRemoteWrite(root, &cfg)

	if len(d.errs) > 0 {
		sortErrors(d.errs)
		return nil, d.errs
	}
	return &cfg, nil
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

func parseLinePrefix(s string) (int, string, bool) {
	m := lineRE.FindStringSubmatch(s)
	if m == nil {
		return 0, "", false
	}
	n, _ := strconv.Atoi(m[1])
	return n, m[2], true
}

// decodeCheck decodes one entry of checks. The section named like the type
// is decoded into the family's own config struct.
func (d *decoder) decodeCheck(n *yaml.Node, path string, g *Global) (Check, bool) {
	c := Check{Line: n.Line}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", kindName(n))
		return c, false
	}
	// The type decides which extra key is allowed, so find it first.
	var typeNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			typeNode = n.Content[i+1]
		}
	}
	var family probes.Family
	known := false
	if typeNode != nil {
		family, known = probes.Lookup(typeNode.Value)
	}
	var sectionKey, sectionNode *yaml.Node
	if d.types == nil {
		d.types = probes.Types()
	}
	d.decodeStruct(n, reflect.ValueOf(&c).Elem(), path, extraKeys{Names: d.types, Claim: func(k, v *yaml.Node) bool {
		if _, isType := probes.Lookup(k.Value); !isType {
			return false
		}
		if !known || k.Value != family.Type {
			d.errorf(k, joinPath(path, k.Value), "section %q does not match the check's type %q", k.Value, typeValue(typeNode))
			return true
		}
		sectionKey, sectionNode = k, v
		return true
	}})

	switch {
	case typeNode == nil:
		d.errorf(n, path, "missing required field \"type\" (one of %s)", strings.Join(probes.Types(), ", "))
	case !known:
		d.errorf(typeNode, joinPath(path, "type"), "unknown check type %q (known: %s)", typeNode.Value, strings.Join(probes.Types(), ", "))
	default:
		c.Spec = family.NewConfig()
		sectionPath := joinPath(path, family.Type)
		if sectionNode != nil {
			d.decode(sectionNode, reflect.ValueOf(c.Spec).Elem(), sectionPath)
		}
		for _, err := range confkit.FlattenErrors(c.Spec.Validate()) {
			d.fieldError(sectionKey, sectionNode, n, sectionPath, err)
		}
	}
	// Durations left out inherit from global; given ones must be positive.
	for _, f := range []struct {
		key    string
		v      *model.Duration
		global model.Duration
	}{{"interval", &c.Interval, g.Interval}, {"timeout", &c.Timeout, g.Timeout}, {"recheck_interval", &c.RecheckInterval, g.RecheckInterval}} {
		switch val := lookupValue(n, f.key); {
		case val == nil || val.Tag == "!!null":
			*f.v = f.global
		case *f.v <= 0 && val.Kind == yaml.ScalarNode:
			// A value that did not parse was reported already.
			if _, err := model.ParseDuration(val.Value); err == nil {
				d.errorf(val, joinPath(path, f.key), "must be greater than 0")
			}
		}
	}
	return c, true
}

func typeValue(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	return n.Value
}

// fieldError reports a family validation error at the key it names, falling
// back to the section (or the check) when the key was defaulted.
func (d *decoder) fieldError(sectionKey, section, check *yaml.Node, path string, err error) {
	var fe *confkit.FieldError
	if !errors.As(err, &fe) {
		at := check
		if sectionKey != nil {
			at = sectionKey
		}
		d.errorf(at, path, "%s", err)
		return
	}
	at := sectionKey
	if at == nil {
		at = check
	}
	if section != nil {
		if k := lookupPath(section, fe.Field); k != nil {
			at = k
		}
	}
	d.errorf(at, joinPath(path, fe.Field), "%s", fe.Err)
}

// lookupPath finds the key node of a dotted path ("processes.0.name")
// inside a mapping; list indexes are numbers. It returns the deepest key
// node that exists.
func lookupPath(n *yaml.Node, path string) *yaml.Node {
	var found *yaml.Node
	for _, part := range strings.Split(path, ".") {
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					found, next = n.Content[i], n.Content[i+1]
					break
				}
			}
			if next == nil {
				return found
			}
			n = next
		case yaml.SequenceNode:
			idx, err := strconv.Atoi(part)
			if err != nil || idx < 0 || idx >= len(n.Content) {
				return found
			}
			n = n.Content[idx]
			found = n
		default:
			return found
		}
	}
	return found
}

var (
	checkNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$`)
	labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// reservedLabels are set by the agent itself on check series.
var reservedLabels = map[string]bool{"check": true, "type": true, "result": true, "reason": true, "phase": true}

func (d *decoder) validateGlobal(root *yaml.Node, g *Global) {
	gn := lookupValue(root, "global")
	at := func(key string) *yaml.Node {
		if gn != nil {
			if k := lookupPath(gn, key); k != nil {
				return k
			}
			return gn
		}
		return root
	}
	positive := func(key string, v model.Duration) {
		if v <= 0 {
			d.errorf(at(key), "global."+key, "must be greater than 0")
		}
	}
	positive("interval", g.Interval)
	positive("timeout", g.Timeout)
	positive("recheck_interval", g.RecheckInterval)
	if g.Jitter >= g.Interval && g.Interval > 0 {
		d.errorf(at("jitter"), "global.jitter", "must be less than global.interval (%s)", g.Interval)
	}
	if g.MaxConcurrency < 1 {
		d.errorf(at("max_concurrency"), "global.max_concurrency", "must be at least 1")
	}
	if g.ScheduleGranularity < 0 || g.ScheduleGranularity > model.Duration(time.Minute) {
		d.errorf(at("schedule_granularity"), "global.schedule_granularity", "must be between 0 (exact start times) and 1m")
	}
	if g.EvaluationInterval < model.Duration(time.Second) {
		d.errorf(at("evaluation_interval"), "global.evaluation_interval", "must be at least 1s")
	}
	if g.SampleRetention < model.Duration(5*time.Minute) || g.SampleRetention < 2*g.EvaluationInterval {
		d.errorf(at("sample_retention"), "global.sample_retention", "must be at least 5m and two evaluation intervals")
	}
	var labelsNode *yaml.Node
	if gn != nil {
		labelsNode = lookupValue(gn, "labels")
	}
	d.validateLabels(labelsNode, at("labels"), "global.labels", g.Labels, false)
	g.Location = time.Local
	if g.Timezone != "" {
		// The binary embeds time/tzdata, so a name resolves the same on a
		// host without zoneinfo files. "Local" would mean the host's zone
		// under another name: refused as not an IANA name.
		loc, err := time.LoadLocation(g.Timezone)
		if err != nil || g.Timezone == "Local" {
			n := at("timezone")
			if v := lookupValue(gn, "timezone"); v != nil {
				n = v
			}
			d.errorf(n, "global.timezone", "unknown time zone %q (want an IANA name like Asia/Shanghai or UTC)", g.Timezone)
		} else {
			g.Location = loc
		}
	}
}

func (d *decoder) validateChecks(nodes []*yaml.Node, checks []Check) {
	seen := map[string]int{}
	for i, c := range checks {
		n := nodes[i]
		path := fmt.Sprintf("checks[%d]", i)
		at := func(key string) *yaml.Node {
			if k := lookupPath(n, key); k != nil {
				return k
			}
			return n
		}
		switch {
		case c.Name == "":
			d.errorf(n, path, "missing required field \"name\"")
		case !checkNameRE.MatchString(c.Name):
			d.errorf(lookupValue(n, "name"), joinPath(path, "name"), "invalid check name %q: use letters, digits, '_', '.', ':' or '-' (at most 63)", c.Name)
		default:
			if first, dup := seen[c.Name]; dup {
				d.errorf(lookupValue(n, "name"), joinPath(path, "name"), "duplicate check name %q (first defined at line %d)", c.Name, first)
			} else {
				seen[c.Name] = n.Line
			}
		}
		if c.Timeout > c.Interval && c.Interval > 0 {
			d.errorf(at("timeout"), joinPath(path, "timeout"), "timeout %s is longer than the interval %s", c.Timeout, c.Interval)
		}
		if c.FailureThreshold < 0 || c.FailureThreshold > 100 {
			d.errorf(at("failure_threshold"), joinPath(path, "failure_threshold"), "must be between 1 and 100, got %d", c.FailureThreshold)
		}
		d.validateLabels(lookupValue(n, "labels"), n, joinPath(path, "labels"), c.Labels, true)
	}
	d.validateDependencies(nodes, checks, seen)
}

// validateDependencies checks depends_on: known checks, not itself, no
// cycle (a cycle would let two failing checks each blame the other and
// page nobody).
func (d *decoder) validateDependencies(nodes []*yaml.Node, checks []Check, known map[string]int) {
	deps := map[string][]string{}
	for _, c := range checks {
		deps[c.Name] = c.DependsOn
	}
	reported := map[string]bool{}
	for i, c := range checks {
		list := lookupValue(nodes[i], "depends_on")
		at := func(j int) *yaml.Node {
			if list != nil && list.Kind == yaml.SequenceNode && j < len(list.Content) {
				return list.Content[j]
			}
			return nodes[i]
		}
		path := joinPath(fmt.Sprintf("checks[%d]", i), "depends_on")
		for j, dep := range c.DependsOn {
			switch _, ok := known[dep]; {
			case dep == c.Name:
				d.errorf(at(j), fmt.Sprintf("%s[%d]", path, j), "a check cannot depend on itself")
			case !ok:
				d.errorf(at(j), fmt.Sprintf("%s[%d]", path, j), "no check named %q", dep)
			}
		}
		if cycle := findCycle(c.Name, deps); cycle != nil && !reported[c.Name] {
			for _, n := range cycle {
				reported[n] = true
			}
			d.errorf(at(0), path, "dependency cycle: %s", strings.Join(cycle, " → "))
		}
	}
}

// findCycle returns a path of depends_on from start back to start, or nil.
func findCycle(start string, deps map[string][]string) []string {
	visited := map[string]bool{}
	var walk func(name string, path []string) []string
	walk = func(name string, path []string) []string {
		for _, dep := range deps[name] {
			if dep == start {
				return append(path, dep)
			}
			if visited[dep] || dep == name {
				continue
			}
			visited[dep] = true
			if c := walk(dep, append(path, dep)); c != nil {
				return c
			}
		}
		return nil
	}
	return walk(start, []string{start})
}

func (d *decoder) validateLabels(n, fallback *yaml.Node, path string, labels map[string]string, check bool) {
	for name := range labels {
		at := fallback
		if n != nil {
			if k := lookupPath(n, name); k != nil {
				at = k
			}
		}
		switch {
		case !labelNameRE.MatchString(name) || strings.HasPrefix(name, "__"):
			d.errorf(at, joinPath(path, name), "invalid label name (must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __)")
		case check && reservedLabels[name]:
			d.errorf(at, joinPath(path, name), "label name is reserved for the agent's own use")
		}
	}
}

// lookupValue returns the value node of key in a mapping, or nil.
func lookupValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func sortErrors(es Errors) {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Col < es[j].Col
	})
}
