// Package notify holds what every paging integration shares: the alert and
// message model (Alertmanager's), the Notifier interface, delivery error
// classes that tell the outbox whether to retry, the HTTP helper, the
// default message templates, and the registry of receiver integration
// kinds. Integrations live in sub-packages, one each, and register from
// init() (notify/all links them in); routing is in notify/route and
// durable delivery in notify/outbox.
package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Alert is one alert as receivers see it: the Alertmanager model.
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	// Fingerprint identifies the alert by its label set (stable across
	// restarts and agents).
	Fingerprint string `json:"fingerprint"`
	// Check is the state of the check the alert is about (labels check or
	// instance naming a configured check), captured when the notification
	// was queued; nil when the alert is not about a check.
	Check *CheckInfo `json:"check,omitempty"`
}

// CheckInfo is what a page shows about the failing check.
type CheckInfo struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Success     bool     `json:"success"`
	Reason      string   `json:"reason,omitempty"`
	Message     string   `json:"message,omitempty"`
	Diagnostics []string `json:"diagnostics,omitempty"`
}

// Resolved reports whether the alert has ended by now.
func (a Alert) Resolved(now time.Time) bool {
	return !a.EndsAt.IsZero() && !a.EndsAt.After(now)
}

// Status is "resolved" or "firing" at now.
func (a Alert) Status(now time.Time) string {
	if a.Resolved(now) {
		return "resolved"
	}
	return "firing"
}

// Fingerprint hashes a label set independently of order.
func Fingerprint(lbls map[string]string) string {
	keys := make([]string, 0, len(lbls))
	for k := range lbls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(lbls[k]))
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Message is one notification: a group of alerts for one receiver, as the
// Alertmanager webhook sends it.
type Message struct {
	// Receiver is the receiver's name; GroupKey identifies the alert group
	// (route and group labels) and is stable across restarts.
	Receiver    string            `json:"receiver"`
	GroupKey    string            `json:"groupKey"`
	GroupLabels map[string]string `json:"groupLabels"`
	Alerts      []Alert           `json:"alerts"`
	// ExternalURL links back to the agent (its status page and API).
	ExternalURL string `json:"externalURL"`
	// Created is when the notification was queued; templates and "resolved"
	// decisions use it, not the delivery time, so a retry sends what the
	// first attempt would have.
	Created time.Time `json:"created"`
}

// Status is "firing" when any alert fires, else "resolved".
func (m *Message) Status() string {
	for _, a := range m.Alerts {
		if !a.Resolved(m.Created) {
			return "firing"
		}
	}
	return "resolved"
}

// Firing and ResolvedAlerts split the alerts by status at Created.
func (m *Message) Firing() []Alert         { return m.filter(false) }
func (m *Message) ResolvedAlerts() []Alert { return m.filter(true) }

func (m *Message) filter(resolved bool) []Alert {
	var out []Alert
	for _, a := range m.Alerts {
		if a.Resolved(m.Created) == resolved {
			out = append(out, a)
		}
	}
	return out
}

// CommonLabels are the labels every alert of the message shares.
func (m *Message) CommonLabels() map[string]string {
	return common(m.Alerts, func(a Alert) map[string]string { return a.Labels })
}

// CommonAnnotations are the annotations every alert shares.
func (m *Message) CommonAnnotations() map[string]string {
	return common(m.Alerts, func(a Alert) map[string]string { return a.Annotations })
}

func common(as []Alert, get func(Alert) map[string]string) map[string]string {
	out := map[string]string{}
	if len(as) == 0 {
		return out
	}
	for k, v := range get(as[0]) {
		out[k] = v
	}
	for _, a := range as[1:] {
		m := get(a)
		for k, v := range out {
			if m[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}

// DedupKey is a stable key of the alert group for receivers that
// deduplicate (PagerDuty's dedup_key): the same group always maps to the
// same incident, however often a notification is retried.
func (m *Message) DedupKey() string {
	sum := sha256.Sum256([]byte(m.Receiver + "\x00" + m.GroupKey))
	return hex.EncodeToString(sum[:])
}

// Notifier delivers one message to one integration. It returns nil only
// once the receiver acknowledged the message; errors may be wrapped in
// Permanent or carry a RetryAfter hint for the outbox.
type Notifier interface {
	Notify(ctx context.Context, m *Message) error
}

// permanentError marks a failure that retrying cannot fix (a rejected
// payload, a bad token): the outbox dead-letters the item at once.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so the outbox does not retry it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err (or one it wraps) is Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// RetryAfterError is a retryable failure where the receiver said when to
// come back (HTTP 429/503 with Retry-After).
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return fmt.Sprintf("%v (retry after %s)", e.Err, e.After) }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// Truncate shortens s to at most n bytes on a rune boundary, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	if n <= len(mark) {
		// No room for the mark: cut on a rune boundary without it.
		for n > 0 && !utf8Start(s[n]) {
			n--
		}
		return s[:max(n, 0)]
	}
	cut := n - len(mark)
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return strings.TrimRight(s[:cut], " \n") + mark
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
