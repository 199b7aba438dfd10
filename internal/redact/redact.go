// Package redact replaces known secret values in text that leaves the
// agent's hands: what a runbook or drill step printed, before it is
// stored, logged or served.
package redact

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Mask replaces each secret value.
const Mask = "<secret>"

// MinLen is the shortest value redacted. Shorter ones ("1", "ops", a port)
// would turn ordinary output into a field of masks and hide nothing an
// attacker could not guess.
const MinLen = 4

// Redactor replaces every known secret value. The set is swapped on
// reload; Redact is safe for concurrent use.
type Redactor struct {
	mu sync.RWMutex
	r  *strings.Replacer
	n  int
}

// New returns a Redactor for values (see Set).
func New(values []string) *Redactor {
	r := &Redactor{}
	r.Set(values)
	return r
}

// Set replaces the known values. Each value also contributes the parts a
// program is likely to print on their own: the password and the token-like query
// parameters of a URL (a DSN, a robot's webhook address), the password of
// a key=value or user:password@ DSN. Longer values are replaced first, so
// a DSN is masked whole before its password is.
func (r *Redactor) Set(values []string) {
	seen := map[string]bool{}
	var all []string
	add := func(v string) {
		v = strings.TrimSpace(v)
		if len(v) >= MinLen && !seen[v] {
			seen[v] = true
			all = append(all, v)
		}
	}
	for _, v := range values {
		add(v)
		for _, p := range parts(v) {
			add(p)
		}
	}
	slices.SortFunc(all, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(all))
	for _, v := range all {
		pairs = append(pairs, v, Mask)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.r, r.n = strings.NewReplacer(pairs...), len(all)
}

// Redact returns s with every known value masked.
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.n == 0 || s == "" {
		return s
	}
	return r.r.Replace(s)
}

var (
	kvPassword   = regexp.MustCompile(`(?i)\b(?:password|passwd|pwd)\s*=\s*('[^']*'|"[^"]*"|[^\s;&]+)`)
	secretKey    = regexp.MustCompile(`(?i)token|key|secret|sign|pass|auth|sig`)
	userPassword = regexp.MustCompile(`^[^:/@\s]+:([^@\s]+)@`) // mysql user:pass@tcp(host)/db
)

// parts are the pieces of a secret that may be printed alone.
func parts(v string) []string {
	var out []string
	if u, err := url.Parse(v); err == nil && u.Scheme != "" {
		if p, ok := u.User.Password(); ok {
			out = append(out, p, url.QueryEscape(p))
		}
		for k, vals := range u.Query() {
			if secretKey.MatchString(k) {
				out = append(out, vals...)
			}
		}
	}
	for _, m := range kvPassword.FindAllStringSubmatch(v, -1) {
		out = append(out, strings.Trim(m[1], `'"`))
	}
	if m := userPassword.FindStringSubmatch(v); m != nil {
		out = append(out, m[1])
	}
	return out
}
