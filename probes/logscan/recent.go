package logscan

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigil-project/vigil/internal/redact"
)

// The check page shows, per pattern, how many lines matched since the
// previous evaluation and the last of those lines. Log lines carry what
// config secrets do not cover (tokens in URLs, passwords in DSNs, session
// cookies), so the lines are redacted by shape before they leave the
// check, and kept short: a pattern keeps its last maxRecent lines, each
// cut to maxRecentBytes as read and to maxShownRunes once redacted.
const (
	maxRecent      = 5
	maxRecentBytes = 512
	maxShownRunes  = 200
)

// recentLines is a ring of a pattern's last matching lines. The slots'
// buffers are reused, so a burst of matches allocates nothing.
type recentLines struct {
	lines [maxRecent][]byte
	// seq is the pattern's total when the line matched: the lines of one
	// evaluation are those with seq above the previous evaluation's total.
	seq  [maxRecent]uint64
	next int // slot the next line goes to
	n    int // slots filled
}

func (r *recentLines) add(line []byte, seq uint64) {
	if len(line) > maxRecentBytes {
		line = line[:maxRecentBytes]
	}
	r.lines[r.next] = append(r.lines[r.next][:0], line...)
	r.seq[r.next] = seq
	r.next = (r.next + 1) % maxRecent
	r.n = min(r.n+1, maxRecent)
}

// between returns the raw lines matched after the pattern's total was
// from and until it was upto, oldest first.
func (r *recentLines) between(from, upto uint64) []string {
	var out []string
	for i := range r.n {
		slot := (r.next - r.n + i + maxRecent) % maxRecent
		if r.seq[slot] > from && r.seq[slot] <= upto {
			out = append(out, string(r.lines[slot]))
		}
	}
	return out
}

func (r *recentLines) reset() { r.n, r.next = 0, 0 }

// PatternReport is one pattern at an evaluation: the check's
// "patterns" diagnostic.
type PatternReport struct {
	Pattern string `json:"pattern"`
	// Matches counts the lines matched since the previous evaluation;
	// Total since the counters began (they survive restarts).
	Matches uint64 `json:"matches"`
	Total   uint64 `json:"total"`
	// LastMatch is when a line last matched (zero: never).
	LastMatch time.Time `json:"last_match,omitzero"`
	// Lines are the last lines matched since the previous evaluation
	// (at most 5, oldest first), redacted and shortened.
	Lines []string `json:"last_lines,omitempty"`
}

// String is the report in one line, for pages and `vigil once`.
func (p PatternReport) String() string {
	s := fmt.Sprintf("%s: %d new, %d total", p.Pattern, p.Matches, p.Total)
	if n := len(p.Lines); n > 0 {
		s += fmt.Sprintf("; last: %q", p.Lines[n-1])
	}
	return s
}

// Shapes of secrets in log lines, masked before a line is shown.
var (
	// scheme://user:password@host
	urlPassword = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):[^@\s/]+@`)
	// Authorization: Bearer xyz, Basic xyz
	authScheme = regexp.MustCompile(`(?i)\b(bearer|basic|digest|token)(\s+)[A-Za-z0-9._~+/=-]{6,}`)
	// password=..., "api_key": "...", X-Auth-Token: ..., token=... in a
	// query string, Authorization: Bearer ...: a key naming a secret,
	// then = or :, then the value (quoted, or up to a separator, with its
	// auth scheme).
	secretField = regexp.MustCompile(`(?i)((?:["']?)[a-z0-9_.-]*(?:passw(?:or)?d|pwd|secret|token|auth|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credential|session[_-]?id|cookie|authorization|signature)[a-z0-9_.-]*["']?\s*[:=]\s*)((?:(?:bearer|basic|digest)\s+)?(?:"[^"]*"|'[^']*'|[^\s,;&"'}\]]+))`)
	// JSON web tokens and AWS access key ids, wherever they appear.
	// A token cut short by maxRecentBytes is masked too.
	jwt      = regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)?`)
	awsKeyID = regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`)
)

// redactLine masks the secrets a log line shows by their shape, then
// makes it valid UTF-8 and at most maxShownRunes long.
func redactLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = urlPassword.ReplaceAllString(s, "$1:"+redact.Mask+"@")
	s = secretField.ReplaceAllStringFunc(s, func(m string) string {
		sub := secretField.FindStringSubmatch(m)
		val := sub[2]
		if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
			return sub[1] + val[:1] + redact.Mask + val[:1]
		}
		return sub[1] + redact.Mask
	})
	s = authScheme.ReplaceAllString(s, "$1$2"+redact.Mask)
	s = jwt.ReplaceAllString(s, redact.Mask)
	s = awsKeyID.ReplaceAllString(s, redact.Mask)
	s = strings.TrimRight(s, "\r")
	if utf8.RuneCountInString(s) > maxShownRunes {
		r := []rune(s)
		s = string(r[:maxShownRunes]) + "…"
	}
	return s
}
