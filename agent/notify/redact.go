package notify

import (
	"net/url"
	"sort"
	"strings"
)

// MinHidden is the shortest value a Redactor hides by default: shorter
// ones (a path segment like "send" or "hook") are not secrets, and
// replacing them would garble messages.
const MinHidden = 8

// Redactor keeps an integration's credentials (its address, token, signing
// secret, routing key or password) out of the errors it returns. Post
// already keeps the URL out, but a receiver, or a proxy in front of it, may
// echo a credential back in the answer an error quotes.
type Redactor struct {
	// hidden are the values to hide, longest first.
	hidden []string
}

// NewRedactor hides the values at least minLen bytes long. They are
// replaced longest first, so a whole address goes before the token inside
// it.
func NewRedactor(minLen int, values ...string) *Redactor {
	var hidden []string
	for _, v := range values {
		if len(v) >= minLen {
			hidden = append(hidden, v)
		}
	}
	sort.Slice(hidden, func(i, j int) bool { return len(hidden[i]) > len(hidden[j]) })
	return &Redactor{hidden: hidden}
}

// URLValues lists the forms of an address that holds a credential: as
// configured and as parsed, and every query value (access_token=…,
// key=…). Integrations whose token is in the path add its segments.
func URLValues(raw string, u *url.URL) []string {
	vals := []string{raw, u.String()}
	for _, vs := range u.Query() {
		vals = append(vals, vs...)
	}
	return vals
}

// Redact replaces every hidden value in s with "<redacted>".
func (r *Redactor) Redact(s string) string {
	for _, h := range r.hidden {
		s = strings.ReplaceAll(s, h, "<redacted>")
	}
	return s
}

// Excerpt shortens a text from a receiver (an error message of its JSON
// answer) for an error, redacted before it is cut so no part of a secret
// survives the cut.
func (r *Redactor) Excerpt(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "(empty)"
	}
	return Truncate(r.Redact(s), 200)
}

// Scrub removes the hidden values from an error's message. The error chain
// is kept, so the outbox still sees Permanent and RetryAfterError.
func (r *Redactor) Scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := r.Redact(msg); clean != msg {
		return &redactedError{msg: clean, err: err}
	}
	return err
}

// redactedError shows a message with the secrets removed but unwraps to
// the original error.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
