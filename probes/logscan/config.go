package logscan

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/internal/confkit"
)

// Config is the `logscan:` section of a check.
type Config struct {
	// Paths are files or globs, re-expanded every GlobInterval.
	Paths []string `yaml:"paths"`
	// Exclude drops matches of these globs (e.g. rotated copies *.1, *.gz).
	Exclude []string `yaml:"exclude,omitempty"`
	// StartAt is where a file seen for the first time is read from: end
	// (only new lines) or beginning. Files that appear after the first
	// scan, and files that replace a rotated one, are always read from the
	// beginning.
	StartAt      string         `yaml:"start_at"`
	MaxLineBytes int            `yaml:"max_line_bytes"`
	PollInterval model.Duration `yaml:"poll_interval"`
	GlobInterval model.Duration `yaml:"glob_interval"`
	// RotateGrace is how long a rotated-away or deleted file is still read
	// after it stops growing, for writers that reopen late.
	RotateGrace model.Duration `yaml:"rotate_grace"`
	// CheckpointInterval is how often offsets and counters are saved while
	// lines arrive. They are also saved at once when files rotate, are
	// truncated or come and go, and when a scrape would otherwise export
	// counts not saved yet (see session.go).
	CheckpointInterval model.Duration `yaml:"checkpoint_interval"`
	// StateFile defaults to logscan-<check>.json next to the agent's store.
	StateFile string `yaml:"state_file,omitempty"`
	// Inotify wakes the reader on file events between polls (Linux).
	Inotify bool `yaml:"inotify"`
	// AllowMissing lets the check pass while no file matches the paths.
	AllowMissing bool      `yaml:"allow_missing"`
	Patterns     []Pattern `yaml:"patterns"`
}

// Pattern turns matching lines into a counter.
type Pattern struct {
	Name  string `yaml:"name"`
	Regex string `yaml:"regex"`
	// LabelsFromGroups names capture groups whose values become labels.
	LabelsFromGroups []string `yaml:"labels_from_groups,omitempty"`
	// MaxLabelValues caps the label combinations; more go to "other".
	MaxLabelValues int `yaml:"max_label_values"`
	// Threshold fails the check (pattern_threshold) when this many lines
	// match within one check interval; 0 never fails.
	Threshold int `yaml:"threshold,omitempty"`
}

func defaultConfig() *Config {
	return &Config{
		StartAt:            "end",
		MaxLineBytes:       16 << 10,
		PollInterval:       model.Duration(250 * time.Millisecond),
		GlobInterval:       model.Duration(10 * time.Second),
		RotateGrace:        model.Duration(5 * time.Second),
		CheckpointInterval: model.Duration(5 * time.Second),
		Inotify:            true,
	}
}

var (
	nameRE     = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	reserved   = map[string]bool{"check": true, "type": true, "pattern": true, "instance": true, "job": true}
	maxPattern = 256
)

// Validate reports every problem as a FieldError.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Paths) == 0 {
		errs = append(errs, confkit.FieldErrorf("paths", "at least one file or glob"))
	}
	for i, p := range append(append([]string{}, c.Paths...), c.Exclude...) {
		field := fmt.Sprintf("paths.%d", i)
		if i >= len(c.Paths) {
			field = fmt.Sprintf("exclude.%d", i-len(c.Paths))
		}
		if _, err := filepath.Match(p, ""); err != nil || p == "" {
			errs = append(errs, confkit.FieldErrorf(field, "invalid glob %q", p))
		}
	}
	if c.StartAt != "end" && c.StartAt != "beginning" {
		errs = append(errs, confkit.FieldErrorf("start_at", "must be end or beginning, got %q", c.StartAt))
	}
	if c.MaxLineBytes < 256 || c.MaxLineBytes > 16<<20 {
		errs = append(errs, confkit.FieldErrorf("max_line_bytes", "must be 256 to 16777216"))
	}
	for field, d := range map[string]model.Duration{"poll_interval": c.PollInterval, "glob_interval": c.GlobInterval,
		"rotate_grace": c.RotateGrace, "checkpoint_interval": c.CheckpointInterval} {
		if d < model.Duration(10*time.Millisecond) {
			errs = append(errs, confkit.FieldErrorf(field, "must be at least 10ms"))
		}
	}
	if len(c.Patterns) == 0 {
		errs = append(errs, confkit.FieldErrorf("patterns", "at least one pattern"))
	}
	if len(c.Patterns) > maxPattern {
		errs = append(errs, confkit.FieldErrorf("patterns", "at most %d patterns", maxPattern))
	}
	seen := map[string]bool{}
	for i, p := range c.Patterns {
		f := fmt.Sprintf("patterns.%d.", i)
		if !nameRE.MatchString(p.Name) {
			errs = append(errs, confkit.FieldErrorf(f+"name", "must be a metric label value of letters, digits and _, got %q", p.Name))
		}
		if seen[p.Name] {
			errs = append(errs, confkit.FieldErrorf(f+"name", "duplicate pattern %q", p.Name))
		}
		seen[p.Name] = true
		re, err := regexp.Compile(p.Regex)
		if err != nil || p.Regex == "" {
			errs = append(errs, confkit.FieldErrorf(f+"regex", "invalid regular expression: %v", err))
			continue
		}
		for j, g := range p.LabelsFromGroups {
			switch {
			case re.SubexpIndex(g) < 0:
				errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("%slabels_from_groups.%d", f, j), "no group (?P<%s>...) in the regex", g))
			case reserved[g] || !nameRE.MatchString(g):
				errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("%slabels_from_groups.%d", f, j), "%q cannot be a label name", g))
			}
		}
		if p.MaxLabelValues < 0 || p.MaxLabelValues > 10000 {
			errs = append(errs, confkit.FieldErrorf(f+"max_label_values", "must be 0 to 10000"))
		}
		if p.Threshold < 0 {
			errs = append(errs, confkit.FieldErrorf(f+"threshold", "must not be negative"))
		}
	}
	return errors.Join(errs...)
}
