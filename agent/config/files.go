package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"

	"gopkg.in/yaml.v3"
)

// ExpandGlobs expands a config's file globs (relative to the config file),
// sorted; key names the config list in errors.
func ExpandGlobs(cfg *Config, key string, globs []string) ([]string, error) {
	base := "."
	if cfg.File != DefaultFile {
		base = filepath.Dir(cfg.File)
	}
	var files []string
	for _, g := range globs {
		if !filepath.IsAbs(g) {
			g = filepath.Join(base, g)
		}
		m, err := filepath.Glob(g)
		if err != nil {
			return nil, fmt.Errorf("%s: bad glob %q: %w", key, g, err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	return files, nil
}

// HasCheck reports whether the config has a check by that name.
func (c *Config) HasCheck(name string) bool {
	return slices.ContainsFunc(c.Checks, func(ch Check) bool { return ch.Name == name })
}

// FileGlobs is a list of file globs, relative to the config file's
// directory when not absolute. A glob that matches nothing is a config
// error — one typo would otherwise turn alerting, a runbook or a drill off
// without a word — unless it is written {glob: G, optional: true}.
type FileGlobs []FileGlob

// FileGlob is one entry of a FileGlobs.
type FileGlob struct {
	Pattern  string
	Optional bool
}

// Patterns are the globs as written.
func (gs FileGlobs) Patterns() []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.Pattern
	}
	return out
}

// UnmarshalYAML reads a glob, or a mapping {glob: G, optional: true}.
func (g *FileGlob) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*g = FileGlob{Pattern: n.Value}
		return nil
	}
	var m struct {
		Glob     string `yaml:"glob"`
		Optional bool   `yaml:"optional"`
	}
	if n.Kind != yaml.MappingNode {
		return errors.New("expected a glob or {glob: ..., optional: true}")
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i].Value; k != "glob" && k != "optional" {
			return fmt.Errorf("unknown key %q (glob, optional)", k)
		}
	}
	if m.Glob == "" {
		return errors.New("glob is required")
	}
	*g = FileGlob{Pattern: m.Glob, Optional: m.Optional}
	return nil
}

// MarshalYAML writes the glob as it was written.
func (g FileGlob) MarshalYAML() (any, error) {
	if !g.Optional {
		return g.Pattern, nil
	}
	return map[string]any{"glob": g.Pattern, "optional": true}, nil
}

// MarshalJSON writes the glob as a string, or {glob, optional}.
func (g FileGlob) MarshalJSON() ([]byte, error) {
	if !g.Optional {
		return json.Marshal(g.Pattern)
	}
	return json.Marshal(map[string]any{"glob": g.Pattern, "optional": true})
}

// validateGlobs reports each glob of rule_files, runbooks and drills that
// is malformed or, unless optional, matches no file.
func (d *decoder) validateGlobs(root *yaml.Node, cfg *Config) {
	base := "."
	if cfg.File != DefaultFile {
		base = filepath.Dir(cfg.File)
	}
	for _, l := range []struct {
		key   string
		globs FileGlobs
	}{{"rule_files", cfg.RuleFiles}, {"runbooks", cfg.Runbooks}, {"drills", cfg.Drills}} {
		list := lookupValue(root, l.key)
		for i, g := range l.globs {
			at := list
			if list != nil && list.Kind == yaml.SequenceNode && i < len(list.Content) {
				at = list.Content[i]
			}
			if at == nil {
				at = root
			}
			path := fmt.Sprintf("%s[%d]", l.key, i)
			p := g.Pattern
			if !filepath.IsAbs(p) {
				p = filepath.Join(base, p)
			}
			m, err := filepath.Glob(p)
			switch {
			case err != nil:
				d.errorf(at, path, "bad glob %q: %v", g.Pattern, err)
			case len(m) == 0 && !g.Optional:
				where := ""
				if !filepath.IsAbs(g.Pattern) {
					where = fmt.Sprintf(" (looked for %s, relative to the config file)", p)
				}
				d.errorf(at, path, "%q matches no file%s; if that is deliberate, write {glob: %q, optional: true}", g.Pattern, where, g.Pattern)
			}
		}
	}
}
