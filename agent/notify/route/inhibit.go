package route

import (
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/internal/confkit"
)

// InhibitConfig mutes alerts matching TargetMatchers while an alert
// matching SourceMatchers fires with the same values of Equal — e.g. no
// "invoice QR failing" page while "database down" fires for the same host.
type InhibitConfig struct {
	SourceMatchers Matchers `yaml:"source_matchers" json:"source_matchers"`
	TargetMatchers Matchers `yaml:"target_matchers" json:"target_matchers"`
	Equal          []string `yaml:"equal" json:"equal,omitempty"`
}

// Validate checks one rule.
func (c *InhibitConfig) Validate() error {
	var errs []error
	if len(c.SourceMatchers) == 0 {
		errs = append(errs, confkit.FieldErrorf("source_matchers", "is required"))
	}
	if len(c.TargetMatchers) == 0 {
		errs = append(errs, confkit.FieldErrorf("target_matchers", "is required"))
	}
	for i, s := range c.SourceMatchers {
		if _, err := ParseMatcher(s); err != nil {
			errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("source_matchers.%d", i), "%v", err))
		}
	}
	for i, s := range c.TargetMatchers {
		if _, err := ParseMatcher(s); err != nil {
			errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("target_matchers.%d", i), "%v", err))
		}
	}
	return errors.Join(errs...)
}

// Inhibitor is a compiled inhibit rule.
type Inhibitor struct {
	source, target []*labels.Matcher
	equal          []string
}

// Compile builds the rule; call Validate first.
func (c *InhibitConfig) Compile() (*Inhibitor, error) {
	src, err := c.SourceMatchers.Parse()
	if err != nil {
		return nil, err
	}
	tgt, err := c.TargetMatchers.Parse()
	if err != nil {
		return nil, err
	}
	return &Inhibitor{source: src, target: tgt, equal: c.Equal}, nil
}

// inhibits reports whether the firing alert src mutes target, as
// Alertmanager decides: an alert never inhibits itself, and a target that
// matches the source side too is only muted by sources that do not match
// the target side — two alerts that each match both sides do not mute each
// other (else neither would page).
func (in *Inhibitor) inhibits(src, target map[string]string, srcFP, targetFP string) bool {
	if srcFP == targetFP || !Matches(in.target, target) || !Matches(in.source, src) {
		return false
	}
	if Matches(in.source, target) && Matches(in.target, src) {
		return false
	}
	for _, name := range in.equal {
		if src[name] != target[name] {
			return false
		}
	}
	return true
}
