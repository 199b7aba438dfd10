package logscan

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestRequiredLiterals(t *testing.T) {
	for _, tc := range []struct {
		re   string
		want []string // nil: none required
	}{
		{`sync failed`, []string{"sync failed"}},
		{`"error_code":"(?P<code>[A-Z_]+)"`, []string{`"error_code":"`}},
		{`^ERROR\b.*timeout`, []string{"timeout"}},
		{`(timeout|refused) after \d+ms`, []string{" after "}},
		{`(timeout|refused)`, []string{"refused", "timeout"}},
		{`(?i)upstream`, []string{"TREAM"}}, // s folds to the long s (U+017F)
		{`(?i)kafka`, []string{"AF"}},       // k folds to the Kelvin sign
		{`\d+`, nil},
		{`a|.*`, nil},
		{`(foo)?bar`, []string{"bar"}},
		{`x*`, nil},
		{`(ab){2,}`, []string{"ab"}},
		{"\ufffdz", []string{"z"}},
	} {
		got, ok := requiredLiterals(tc.re)
		if !ok {
			got = nil
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("requiredLiterals(%q) = %q, want %q", tc.re, got, tc.want)
		}
	}
}

var fuzzPatterns = []Pattern{
	{Name: "sync_failed", Regex: `"msg":"sync failed".*"error_code":"(?P<code>[A-Z_0-9]+)"`, LabelsFromGroups: []string{"code"}},
	{Name: "err", Regex: `(?i)\berror\b`},
	{Name: "kelvin", Regex: `(?i)kb`},
	{Name: "status5xx", Regex: `"status":5\d\d`},
	{Name: "slow", Regex: `"duration_ms":(\d{4,}|[5-9]\d\d)\.`},
	{Name: "digits", Regex: `\d{6}`},
	{Name: "alt", Regex: `(timeout|refused|reset by peer)`},
	{Name: "anchored", Regex: `^WARN `},
	{Name: "unicode", Regex: `发票.*失败`},
	{Name: "overlap", Regex: `abcab`},
	{Name: "overlap2", Regex: `bcabx`},
	{Name: "repl", Regex: "\ufffd+x"},
}

// checkAgainstPlain scans data line by line both ways and compares.
func checkAgainstPlain(t testing.TB, m *matcher, data []byte) {
	t.Helper()
	lines := bytes.Split(data, []byte("\n"))
	ends := make([]int, 0, len(lines))
	off := 0
	for _, l := range lines {
		off += len(l)
		ends = append(ends, off)
		off++
	}
	got := make([][]int, len(lines))
	m.scan(data, ends, func(i int, line []byte, p int, _ []int) {
		if !bytes.Equal(line, lines[i]) {
			t.Fatalf("line %d visited as %q, is %q", i, line, lines[i])
		}
		got[i] = append(got[i], p)
	})
	for i, l := range lines {
		want := m.plainMatches(l)
		g := got[i]
		slices.Sort(g)
		if !slices.Equal(g, want) {
			t.Fatalf("line %q: prefiltered %v, plain regexp %v", l, g, want)
		}
	}
}

func TestMatcherAgreesWithRegexp(t *testing.T) {
	m, slow, err := newMatcher(fuzzPatterns)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(slow, []string{"digits"}) {
		t.Errorf("patterns without a required literal: %v", slow)
	}
	checkAgainstPlain(t, m, []byte(strings.Join([]string{
		`{"level":"ERROR","msg":"sync failed","number":"1","error_code":"UPSTREAM_5XX"}`,
		`{"status":503,"duration_ms":812.5}`,
		"an Error here", "ERRORS do not count", "Kb is a kelvin kb",
		"123456", "connection reset by peer", "WARN disk", " WARN not anchored",
		"发票同步失败", "xxabcabx", "\xff\xfex", "\xffx", "", "plain line",
	}, "\n")))
}

func FuzzMatcher(f *testing.F) {
	m, _, err := newMatcher(fuzzPatterns)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"error\nkb", "abcabx", "\u212Ab", "\xffx\n发票失败", `"status":500`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgainstPlain(t, m, data)
	})
}
