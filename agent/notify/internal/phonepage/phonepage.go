// Package phonepage holds what the SMS and voice integrations (Aliyun SMS,
// Aliyun voice, Tencent Cloud SMS) share: per-number limits that keep an
// alert storm from exhausting the provider's quota, the progress of one
// notification across retries so a retry never texts or calls a number
// that already got it, template parameters rendered from the alerts, and
// the bounded reading of a cloud API's answer.
//
// Each number of an entry is a delivery of its own: one may be sent, one
// deferred by its minimum gap, one throttled by the provider, one refused
// for good. Outcome folds them into the one error the outbox sees.
package phonepage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/internal/confkit"
)

// MaxAnswer bounds how much of a cloud API's answer is read: theirs are a
// few hundred bytes.
const MaxAnswer = 64 << 10

// ReadAnswer reads at most MaxAnswer bytes of an answer.
func ReadAnswer(r io.Reader) []byte {
	b, _ := io.ReadAll(io.LimitReader(r, MaxAnswer))
	return b
}

// Default per-number limits. Aliyun and Tencent Cloud both throttle one
// number to about one message a minute and five an hour by default (then
// answer isv.BUSINESS_LIMIT_CONTROL or LimitExceeded.PhoneNumber…): vigil
// stays inside them instead of spending attempts, and the quota, on
// refusals.
const (
	DefaultMinInterval = model.Duration(time.Minute)
	DefaultMaxPerHour  = 5
)

// Limits are the per-number settings every SMS and voice entry has,
// inlined into its config.
type Limits struct {
	// PhoneMinInterval is the least time between two messages (or calls)
	// to one number; a notification due sooner waits for the gap (the
	// outbox retries it then). 0 disables the gap.
	PhoneMinInterval model.Duration `yaml:"phone_min_interval" json:"phone_min_interval"`
	// PhoneMaxPerHour caps messages to one number in any hour; beyond it a
	// notification is not sent to that number and is dead-lettered (so
	// vigil_notify_dead_letter_total and NotificationsDeadLettered show
	// it). 0 disables the cap.
	PhoneMaxPerHour int `yaml:"phone_max_per_hour" json:"phone_max_per_hour"`
}

// DefaultLimits are the limits of a new config.
func DefaultLimits() Limits {
	return Limits{PhoneMinInterval: DefaultMinInterval, PhoneMaxPerHour: DefaultMaxPerHour}
}

// Validate reports negative limits as field errors.
func (l Limits) Validate() error {
	var errs []error
	if l.PhoneMinInterval < 0 {
		errs = append(errs, confkit.FieldErrorf("phone_min_interval", "must not be negative"))
	}
	if l.PhoneMaxPerHour < 0 {
		errs = append(errs, confkit.FieldErrorf("phone_max_per_hour", "must not be negative (0 disables the cap)"))
	}
	return errors.Join(errs...)
}

// numberRE is a phone number as both providers take it: digits, with an
// optional leading + and country code (E.164 allows 15 digits; Aliyun's
// international numbers carry a 00 prefix).
var numberRE = regexp.MustCompile(`^\+?[0-9]{5,20}$`)

// CheckNumbers checks a required list of phone numbers for Validate: at
// least one, each well-formed and listed once.
func CheckNumbers(field string, numbers []string) error {
	if len(numbers) == 0 {
		return confkit.FieldErrorf(field, "at least one phone number is required")
	}
	var errs []error
	seen := map[string]bool{}
	for i, n := range numbers {
		f := fmt.Sprintf("%s.%d", field, i)
		switch {
		case !numberRE.MatchString(n):
			errs = append(errs, confkit.FieldErrorf(f, "%q is not a phone number (digits, optionally +country code)", n))
		case seen[n]:
			errs = append(errs, confkit.FieldErrorf(f, "%s is listed twice", Mask(n)))
		}
		seen[n] = true
	}
	return errors.Join(errs...)
}

// Mask shows a number in errors and logs as the on-call recognise it
// without printing it whole: 138****1111.
func Mask(n string) string {
	if len(n) <= 7 {
		return strings.Repeat("*", len(n))
	}
	return n[:3] + strings.Repeat("*", len(n)-7) + n[len(n)-4:]
}

// CutRunes shortens s to at most n characters (not bytes: providers count
// characters), marking the cut; n ≤ 0 leaves s whole.
func CutRunes(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimRight(string(r[:n-1]), " ") + "…"
}

// Default template parameters: the names and texts vigil fills when an
// entry does not set its own. The approved template must use these
// variable names (${alert}, ${status}, …); otherwise set the entry's
// parameters to match it.
var (
	DefaultParamNames = []string{"alert", "status", "count", "check"}
	DefaultParams     = map[string]string{
		"alert":  `{{ with .CommonLabels.alertname }}{{ . }}{{ else }}{{ len .Alerts }} alerts{{ end }}`,
		"status": `{{ .Status }}`,
		"count":  `{{ if eq .Status "firing" }}{{ len .Firing }}{{ else }}{{ len .Resolved }}{{ end }}`,
		"check":  `{{ with .CommonLabels.check }}{{ . }}{{ else }}{{ range $i, $a := .Alerts }}{{ if $i }},{{ end }}{{ $a.Labels.check }}{{ end }}{{ end }}`,
	}
)

// Params are parsed template parameters: one template per name, rendered
// in the order of Names.
type Params struct {
	Names []string
	tmpl  map[string]*notify.Template
	// maxRunes bounds each rendered value; 0 leaves it whole.
	maxRunes int
}

// CheckParams checks parameter templates for Validate: errors at
// field.name.
func CheckParams(field string, params map[string]string) error {
	var errs []error
	for _, k := range sortedKeys(params) {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, confkit.FieldErrorf(field, "parameter names must not be empty"))
			continue
		}
		errs = append(errs, notify.CheckField(field+"."+k, "", params[k], ""))
	}
	return errors.Join(errs...)
}

// ParseParams parses parameter templates, names in order; nil or empty
// params take DefaultParams. maxRunes bounds each rendered value.
func ParseParams(field string, names []string, params map[string]string, maxRunes int) (*Params, error) {
	if len(params) == 0 {
		names, params = DefaultParamNames, DefaultParams
	}
	p := &Params{Names: names, tmpl: map[string]*notify.Template{}, maxRunes: maxRunes}
	for _, k := range names {
		t, err := notify.ParseField(field+"."+k, "", params[k], "")
		if err != nil {
			return nil, err
		}
		p.tmpl[k] = t
	}
	return p, nil
}

// Render renders every parameter for a message, in the order of Names.
// A value that does not render fails every retry the same way: the error
// is Permanent (from the template).
func (p *Params) Render(m *notify.Message) ([]string, error) {
	d := notify.NewData(m)
	out := make([]string, len(p.Names))
	for i, k := range p.Names {
		v, err := p.tmpl[k].Body(d)
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", k, err)
		}
		out[i] = CutRunes(strings.Join(strings.Fields(v), " "), p.maxRunes)
	}
	return out, nil
}

// sortedKeys lists a map's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SortedKeys lists a parameter map's names in order: the order Aliyun's
// JSON parameters are rendered in.
func SortedKeys(m map[string]string) []string { return sortedKeys(m) }

// Limiter keeps the per-number limits of one entry. It lives as long as
// the entry's notifier: a restart or a reload starts it afresh.
type Limiter struct {
	limits Limits
	now    func() time.Time

	mu   sync.Mutex
	sent map[string][]time.Time // per number, the sends of the last hour, oldest first
}

// NewLimiter makes a limiter; now is the clock (time.Now outside tests).
func NewLimiter(l Limits, now func() time.Time) *Limiter {
	return &Limiter{limits: l, now: now, sent: map[string][]time.Time{}}
}

// check says whether number may get a message now: wait > 0 when its
// minimum gap has not passed, capped when it had its hourly share.
func (l *Limiter) check(number string) (wait time.Duration, capped bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	times := l.prune(number, now)
	if max := l.limits.PhoneMaxPerHour; max > 0 && len(times) >= max {
		return 0, true
	}
	if gap := time.Duration(l.limits.PhoneMinInterval); gap > 0 && len(times) > 0 {
		if next := times[len(times)-1].Add(gap); next.After(now) {
			return next.Sub(now), false
		}
	}
	return 0, false
}

// record notes a message accepted by the provider for number.
func (l *Limiter) record(number string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sent[number] = append(l.prune(number, now), now)
}

// prune drops sends older than an hour; l.mu is held.
func (l *Limiter) prune(number string, now time.Time) []time.Time {
	times := l.sent[number]
	i := 0
	for i < len(times) && !times[i].After(now.Add(-time.Hour)) {
		i++
	}
	times = times[i:]
	if len(times) == 0 {
		delete(l.sent, number)
		return nil
	}
	l.sent[number] = times
	return times
}

// maxProgress bounds the notifications whose progress is remembered; an
// older one forgotten is at worst sent again to a number that had it.
const maxProgress = 1024

// Progress remembers, per notification, the numbers that are done with
// (sent, or refused for good) so the outbox's retries go to the others
// only. Like the Limiter it lives in memory with its notifier.
type Progress struct {
	mu    sync.Mutex
	done  map[string]map[string]error // key → number → nil (sent) or why it failed for good
	order []string                    // keys, oldest first
}

// NewProgress makes an empty Progress.
func NewProgress() *Progress { return &Progress{done: map[string]map[string]error{}} }

// Key identifies one notification across its retries: the alert group,
// when it was queued and its status (a retry carries the same).
func Key(m *notify.Message) string {
	h := sha256.Sum256([]byte(m.DedupKey() + "\x00" + strconv.FormatInt(m.Created.UnixNano(), 10) + "\x00" + m.Status()))
	return hex.EncodeToString(h[:16])
}

func (p *Progress) get(key string) map[string]error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done[key]
}

func (p *Progress) mark(key, number string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.done[key]
	if !ok {
		d = map[string]error{}
		p.done[key] = d
		p.order = append(p.order, key)
		if len(p.order) > maxProgress {
			delete(p.done, p.order[0])
			p.order = p.order[1:]
		}
	}
	d[number] = err
}

func (p *Progress) forget(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.done, key)
	if i := slices.Index(p.order, key); i >= 0 {
		p.order = slices.Delete(p.order, i, i+1)
	}
}

// Sender is the per-number state of one entry: its limits and the
// progress of its notifications.
type Sender struct {
	Limiter  *Limiter
	Progress *Progress
}

// NewSender makes the state of an entry with these limits.
func NewSender(l Limits, now func() time.Time) *Sender {
	return &Sender{Limiter: NewLimiter(l, now), Progress: NewProgress()}
}

// Round is one attempt at a notification: the numbers due now, and what
// became of the others.
type Round struct {
	s   *Sender
	key string
	// Due are the numbers to send to in this attempt.
	Due []string
	// wait is the longest gap a deferred number still has to wait.
	wait     time.Duration
	deferred []string
	capped   []string
	results  map[string]error
}

// Begin starts an attempt at m for numbers: those done with in an earlier
// attempt are skipped, those inside their minimum gap deferred, those over
// their hourly cap refused.
func (s *Sender) Begin(m *notify.Message, numbers []string) *Round {
	r := &Round{s: s, key: Key(m), results: map[string]error{}}
	done := s.Progress.get(r.key)
	for _, n := range numbers {
		if _, ok := done[n]; ok {
			continue
		}
		switch wait, capped := s.Limiter.check(n); {
		case capped:
			r.capped = append(r.capped, n)
			s.Progress.mark(r.key, n, errCapped)
		case wait > 0:
			r.deferred = append(r.deferred, n)
			r.wait = max(r.wait, wait)
		default:
			r.Due = append(r.Due, n)
		}
	}
	return r
}

var errCapped = errors.New("not sent: over phone_max_per_hour")

// Result records what the provider said for one due number: nil is
// accepted (the number counts against its limits and is not sent to again
// for this notification), a Permanent error refused for good (not retried
// either), any other error retried.
func (r *Round) Result(number string, err error) {
	r.results[number] = err
	switch {
	case err == nil:
		r.s.Limiter.record(number)
		r.s.Progress.mark(r.key, number, nil)
	case notify.IsPermanent(err):
		r.s.Progress.mark(r.key, number, err)
	}
}

// Outcome folds the attempt into the error the outbox sees: retried when a
// number failed in a way a retry may fix or is waiting for its gap (after
// the longest Retry-After or gap), permanent when every number is done
// and one of them failed for good or was over its cap, nil when every
// number got it. Errors name numbers masked.
func (r *Round) Outcome() error {
	var retry []error
	after := r.wait
	for _, n := range r.Due {
		err, ok := r.results[n]
		if !ok {
			err = errors.New("not attempted")
		}
		if err == nil || notify.IsPermanent(err) {
			continue
		}
		retry = append(retry, fmt.Errorf("%s: %w", Mask(n), err))
		var ra *notify.RetryAfterError
		if errors.As(err, &ra) {
			after = max(after, ra.After)
		}
	}
	if len(r.deferred) > 0 {
		masked := make([]string, len(r.deferred))
		for i, n := range r.deferred {
			masked[i] = Mask(n)
		}
		retry = append(retry, fmt.Errorf("%s: waiting for phone_min_interval", strings.Join(masked, ", ")))
	}
	if len(retry) > 0 {
		err := errors.Join(retry...)
		err = fmt.Errorf("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
		if after > 0 {
			return &notify.RetryAfterError{Err: err, After: after}
		}
		return err
	}
	// Every number is done with: report those that failed for good,
	// earlier attempts included.
	done := r.s.Progress.get(r.key)
	r.s.Progress.forget(r.key)
	var failed []error
	for _, n := range sortedErrKeys(done) {
		if done[n] != nil {
			failed = append(failed, fmt.Errorf("%s: %w", Mask(n), done[n]))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return notify.Permanent(fmt.Errorf("%s", strings.ReplaceAll(errors.Join(failed...).Error(), "\n", "; ")))
}

func sortedErrKeys(m map[string]error) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
