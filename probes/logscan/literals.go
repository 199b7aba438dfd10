package logscan

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// requiredLiterals returns a set of strings such that every line the regex
// matches contains at least one of them, or ok=false when no such set
// exists (a pattern like `\d+` or `a|.*`). The set lets one Aho-Corasick
// pass over the input rule out nearly every line before any regex runs.
func requiredLiterals(expr string) (lits []string, ok bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, false
	}
	a := analyze(re.Simplify())
	if !a.ok || len(a.lits) == 0 {
		return nil, false
	}
	return a.lits, true
}

// analysis of one node: ok means every match contains one of lits; empty
// means the node can only match the empty string (anchors), so it is
// transparent inside a concatenation.
type analysis struct {
	lits  []string
	ok    bool
	empty bool
}

const maxLiterals = 64

func analyze(re *syntax.Regexp) analysis {
	switch re.Op {
	case syntax.OpLiteral:
		if lit := safeLiteral(re); lit != "" {
			return analysis{lits: []string{lit}, ok: true}
		}
		return analysis{}
	case syntax.OpCapture:
		return analyze(re.Sub[0])
	case syntax.OpPlus:
		return analyze(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return analyze(re.Sub[0])
		}
		return analysis{}
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return analysis{empty: true}
	case syntax.OpConcat:
		return analyzeConcat(re.Sub)
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			a := analyze(sub)
			if !a.ok {
				return analysis{}
			}
			out = append(out, a.lits...)
		}
		slices.Sort(out)
		out = slices.Compact(out)
		if len(out) > maxLiterals {
			return analysis{}
		}
		return analysis{lits: out, ok: true}
	default:
		// Char classes, any-char, star, quest: nothing required.
		return analysis{}
	}
}

// analyzeConcat joins runs of adjacent literals into longer ones and picks
// the child whose requirement is the most selective.
func analyzeConcat(subs []*syntax.Regexp) analysis {
	var best analysis
	consider := func(a analysis) {
		if !a.ok {
			return
		}
		if !best.ok || better(a.lits, best.lits) {
			best = a
		}
	}
	var run strings.Builder
	flush := func() {
		if run.Len() > 0 {
			consider(analysis{lits: []string{run.String()}, ok: true})
			run.Reset()
		}
	}
	for _, sub := range subs {
		if sub.Op == syntax.OpLiteral {
			lit := safeLiteral(sub)
			if lit != "" && lit == string(sub.Rune) {
				run.WriteString(lit)
				continue
			}
			// A literal only partly usable ends the run.
			flush()
			if lit != "" {
				consider(analysis{lits: []string{lit}, ok: true})
			}
			continue
		}
		flush()
		a := analyze(sub)
		if a.empty {
			continue
		}
		consider(a)
	}
	flush()
	return best
}

// better prefers the set whose shortest literal is longer, then fewer literals.
func better(a, b []string) bool {
	ma, mb := minLen(a), minLen(b)
	if ma != mb {
		return ma > mb
	}
	return len(a) < len(b)
}

func minLen(ls []string) int {
	m := -1
	for _, l := range ls {
		if m < 0 || len(l) < m {
			m = len(l)
		}
	}
	return m
}

// safeLiteral returns the longest piece of a literal node that the
// ASCII-case-insensitive prefilter finds wherever the regex matches. Pieces
// are cut at runes it could miss: newlines (never inside a line),
// U+FFFD (the regexp engine reads invalid UTF-8 as that rune) and, for
// case-folded literals, runes whose folding reaches beyond ASCII (such as
// k, which (?i) also matches as the Kelvin sign).
func safeLiteral(re *syntax.Regexp) string {
	fold := re.Flags&syntax.FoldCase != 0
	var best, cur strings.Builder
	bestLen := 0
	cut := func() {
		if cur.Len() > bestLen {
			best.Reset()
			best.WriteString(cur.String())
			bestLen = cur.Len()
		}
		cur.Reset()
	}
	for _, r := range re.Rune {
		if r == '\n' || r == utf8.RuneError || (fold && !asciiFoldOnly(r)) {
			cut()
			continue
		}
		cur.WriteRune(r)
	}
	cut()
	return best.String()
}

// asciiFoldOnly reports whether every case variant of r is ASCII (or r has
// none), so an ASCII-case-insensitive search finds all of them.
func asciiFoldOnly(r rune) bool {
	if r >= utf8.RuneSelf {
		return unicode.SimpleFold(r) == r
	}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
