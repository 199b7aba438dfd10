package route

import (
	"fmt"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/vigil-project/vigil/internal/confkit"
)

// MatchesNothing reports whether no label set of known satisfies every
// matcher of a silence, and if so, hints at what was probably meant: for
// an equality matcher on a label that exists, its closest values; for a
// label no known set has, the closest label names.
func MatchesNothing(ms []*labels.Matcher, known []map[string]string) (nothing bool, hints []string) {
	for _, set := range known {
		if Matches(ms, set) {
			return false, nil
		}
	}
	values := map[string]map[string]bool{}
	for _, set := range known {
		for k, v := range set {
			if values[k] == nil {
				values[k] = map[string]bool{}
			}
			values[k][v] = true
		}
	}
	for _, m := range ms {
		vs, ok := values[m.Name]
		switch {
		case !ok:
			names := make([]string, 0, len(values))
			for k := range values {
				names = append(names, k)
			}
			if c := closest(m.Name, names); len(c) > 0 {
				hints = append(hints, fmt.Sprintf("no alert or series has the label %q; did you mean %q?", m.Name, c[0]))
			} else {
				hints = append(hints, fmt.Sprintf("no alert or series has the label %q", m.Name))
			}
		case m.Type == labels.MatchEqual && !vs[m.Value]:
			list := make([]string, 0, len(vs))
			for v := range vs {
				list = append(list, v)
			}
			if c := closest(m.Value, list); len(c) > 0 {
				hints = append(hints, fmt.Sprintf("%s is never %q; closest values: %q", m.Name, m.Value, c))
			}
		}
	}
	return true, hints
}

// closest returns up to three candidates nearest to s by edit distance.
func closest(s string, candidates []string) []string {
	sort.Slice(candidates, func(i, j int) bool {
		di, dj := confkit.Distance(s, candidates[i]), confkit.Distance(s, candidates[j])
		if di != dj {
			return di < dj
		}
		return candidates[i] < candidates[j]
	})
	return candidates[:min(3, len(candidates))]
}
