package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
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
