package logscan

import (
	"fmt"
	"regexp"
	"slices"

	aho "github.com/petar-dambovaliev/aho-corasick"
)

// matcher runs every pattern of a check over a buffer of lines: one
// Aho-Corasick pass finds the lines holding a required literal of some
// pattern, and only those lines meet that pattern's regex.
type matcher struct {
	patterns []*compiled
	ac       *aho.AhoCorasick
	// owners maps each automaton literal to the patterns requiring it.
	owners [][]int
	// always are the patterns without a required literal: every line is a
	// candidate for them.
	always []int
	// scratch, reused across scans (one scanning goroutine per check).
	cands []candidate
}

type compiled struct {
	name   string
	re     *regexp.Regexp
	groups []int // submatch indexes that become labels, in label order
}

type candidate struct{ line, pattern int }

// newMatcher compiles the patterns (already validated) and reports the
// names of those without a required literal.
func newMatcher(ps []Pattern) (*matcher, []string, error) {
	m := &matcher{}
	var lits []string
	index := map[string]int{}
	var slow []string
	for i, p := range ps {
		re, err := regexp.Compile(p.Regex)
		if err != nil {
			return nil, nil, fmt.Errorf("pattern %s: %w", p.Name, err)
		}
		c := &compiled{name: p.Name, re: re}
		for _, g := range p.LabelsFromGroups {
			c.groups = append(c.groups, re.SubexpIndex(g))
		}
		m.patterns = append(m.patterns, c)
		req, ok := requiredLiterals(p.Regex)
		if !ok {
			m.always = append(m.always, i)
			slow = append(slow, p.Name)
			continue
		}
		for _, l := range req {
			j, seen := index[l]
			if !seen {
				j = len(lits)
				index[l] = j
				lits = append(lits, l)
				m.owners = append(m.owners, nil)
			}
			m.owners[j] = append(m.owners[j], i)
		}
	}
	if len(lits) > 0 {
		b := aho.NewAhoCorasickBuilder(aho.Opts{AsciiCaseInsensitive: true, MatchKind: aho.StandardMatch, DFA: true})
		ac := b.Build(lits)
		m.ac = &ac
	}
	return m, slow, nil
}

// scan visits every (line, pattern) pair where the pattern matches, i
// being the line's index. buf
// holds complete lines; ends[i] is the offset of line i's newline (or its
// end), line i spanning ends[i-1]+1 to ends[i]. For patterns with label
// groups, sub holds the submatch indexes of the match.
func (m *matcher) scan(buf []byte, ends []int, visit func(i int, line []byte, pattern int, sub []int)) {
	m.cands = m.cands[:0]
	if m.ac != nil {
		it := m.ac.IterOverlappingByte(buf)
		line := 0
		for hit := it.Next(); hit != nil; hit = it.Next() {
			at := hit.End() - 1
			for line < len(ends) && ends[line] < at {
				line++
			}
			if line == len(ends) {
				break
			}
			for _, p := range m.owners[hit.Pattern()] {
				m.cands = append(m.cands, candidate{line, p})
			}
		}
	}
	if len(m.cands) > 1 {
		slices.SortFunc(m.cands, func(a, b candidate) int {
			if a.line != b.line {
				return a.line - b.line
			}
			return a.pattern - b.pattern
		})
		m.cands = slices.Compact(m.cands)
	}
	start := func(i int) int {
		if i == 0 {
			return 0
		}
		return ends[i-1] + 1
	}
	try := func(i int, line []byte, p int) {
		c := m.patterns[p]
		if len(c.groups) == 0 {
			if c.re.Match(line) {
				visit(i, line, p, nil)
			}
			return
		}
		if sub := c.re.FindSubmatchIndex(line); sub != nil {
			visit(i, line, p, sub)
		}
	}
	if len(m.always) == 0 {
		for _, c := range m.cands {
			try(c.line, buf[start(c.line):ends[c.line]], c.pattern)
		}
		return
	}
	// Merge the candidates with the always-run patterns, line by line.
	ci := 0
	for i := range ends {
		line := buf[start(i):ends[i]]
		for _, p := range m.always {
			try(i, line, p)
		}
		for ci < len(m.cands) && m.cands[ci].line == i {
			try(i, line, m.cands[ci].pattern)
			ci++
		}
	}
}

// plainMatches is the reference: every pattern's regex on the line.
func (m *matcher) plainMatches(line []byte) []int {
	var out []int
	for i, c := range m.patterns {
		if c.re.Match(line) {
			out = append(out, i)
		}
	}
	return out
}
