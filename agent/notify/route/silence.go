package route

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/agent/store"
)

// Silence mutes matching alerts between StartsAt and EndsAt. Silences are
// always time-bounded and say who created them and why.
type Silence struct {
	ID        string    `json:"id"`
	Matchers  Matchers  `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Status is active, pending (starts later) or expired.
	Status string `json:"status"`

	compiled []*labels.Matcher
}

// MaxSilence is the longest silence accepted: a forgotten silence must not
// mute a pager for months.
const MaxSilence = 30 * 24 * time.Hour

// SilenceStore persists silences (agent/store implements it).
type SilenceStore interface {
	SaveSilence(ctx context.Context, s store.Silence) error
	Silences(ctx context.Context, since time.Time) ([]store.Silence, error)
}

// Silences is the set of silences, kept in memory and written through to
// the store.
type Silences struct {
	st  SilenceStore
	now func() time.Time

	mu   sync.RWMutex
	list []*Silence
}

// NewSilences loads the silences that have not ended.
func NewSilences(ctx context.Context, st SilenceStore, now func() time.Time) (*Silences, error) {
	s := &Silences{st: st, now: now}
	rows, err := st.Silences(ctx, now().Add(-24*time.Hour))
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		var ms Matchers
		if err := json.Unmarshal([]byte(r.Matchers), &ms); err != nil {
			return nil, fmt.Errorf("silence %s: %w", r.ID, err)
		}
		sl := &Silence{ID: r.ID, Matchers: ms, StartsAt: r.StartsAt, EndsAt: r.EndsAt, CreatedBy: r.CreatedBy, Comment: r.Comment, UpdatedAt: r.UpdatedAt}
		if sl.compiled, err = ms.Parse(); err != nil {
			return nil, fmt.Errorf("silence %s: %w", r.ID, err)
		}
		s.list = append(s.list, sl)
	}
	return s, nil
}

// Add validates and stores a new silence; it returns it with its ID.
func (s *Silences) Add(ctx context.Context, sl Silence) (*Silence, error) {
	now := s.now()
	if sl.StartsAt.IsZero() {
		sl.StartsAt = now
	}
	var errs []error
	if len(sl.Matchers) == 0 {
		errs = append(errs, errors.New("at least one matcher is required"))
	}
	compiled, err := sl.Matchers.Parse()
	if err != nil {
		errs = append(errs, err)
	}
	matchesAll := true
	for _, m := range compiled {
		if !m.Matches("") {
			matchesAll = false
		}
	}
	if err == nil && len(compiled) > 0 && matchesAll {
		errs = append(errs, errors.New("the matchers would match every alert; name at least one label value"))
	}
	if !sl.EndsAt.After(sl.StartsAt) || !sl.EndsAt.After(now) {
		errs = append(errs, errors.New("the silence must end in the future and after it starts"))
	}
	if sl.EndsAt.Sub(sl.StartsAt) > MaxSilence {
		errs = append(errs, fmt.Errorf("a silence lasts at most %s", MaxSilence))
	}
	if sl.CreatedBy == "" {
		errs = append(errs, errors.New("the author (createdBy) is required"))
	}
	if sl.Comment == "" {
		errs = append(errs, errors.New("a comment saying why is required"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	b := make([]byte, 8)
	rand.Read(b)
	sl.ID = hex.EncodeToString(b)
	sl.UpdatedAt = now
	sl.compiled = compiled
	if err := s.save(ctx, &sl, now); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.list = append(s.list, &sl)
	s.mu.Unlock()
	out := sl
	out.Status = out.status(now)
	return &out, nil
}

func (s *Silences) save(ctx context.Context, sl *Silence, created time.Time) error {
	ms, _ := json.Marshal(sl.Matchers)
	return s.st.SaveSilence(ctx, store.Silence{ID: sl.ID, Matchers: string(ms), StartsAt: sl.StartsAt, EndsAt: sl.EndsAt,
		CreatedBy: sl.CreatedBy, Comment: sl.Comment, CreatedAt: created, UpdatedAt: sl.UpdatedAt})
}

// ErrNoSilence is returned for an unknown or already expired silence.
var ErrNoSilence = errors.New("no such active silence")

// Expire ends a silence now.
func (s *Silences) Expire(ctx context.Context, id string) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sl := range s.list {
		if sl.ID != id || !sl.EndsAt.After(now) {
			continue
		}
		upd := *sl
		upd.EndsAt, upd.UpdatedAt = now, now
		if upd.StartsAt.After(now) {
			upd.StartsAt = now
		}
		if err := s.save(ctx, &upd, now); err != nil {
			return err
		}
		*sl = upd
		return nil
	}
	return ErrNoSilence
}

// List returns silences that have not ended, and those expired in the last
// day, newest first.
func (s *Silences) List() []Silence {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Silence
	for _, sl := range s.list {
		if sl.EndsAt.Before(now.Add(-24 * time.Hour)) {
			continue
		}
		c := *sl
		c.Status = c.status(now)
		c.compiled = nil
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartsAt.After(out[j].StartsAt) })
	return out
}

func (sl *Silence) status(now time.Time) string {
	switch {
	case !sl.EndsAt.After(now):
		return "expired"
	case sl.StartsAt.After(now):
		return "pending"
	default:
		return "active"
	}
}

// Silenced returns the IDs of the active silences matching lbls.
func (s *Silences) Silenced(lbls map[string]string, now time.Time) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	for _, sl := range s.list {
		if sl.status(now) == "active" && Matches(sl.compiled, lbls) {
			ids = append(ids, sl.ID)
		}
	}
	return ids
}
