package remotewrite

import (
	"math"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/value"

	"github.com/vigil-project/vigil/rules"
)

// snapshotter turns the agent's series into one remote's samples: external
// labels added (a series' own label wins, as in Prometheus), write
// relabelling applied, and a stale marker for every series the previous
// snapshot had and this one has not, so the receiver ends it at once as a
// Prometheus scraping the agent would (a resolved alert's ALERTS series
// does not linger for five minutes).
type snapshotter struct {
	src      rules.Source
	external labels.Labels
	relabel  []*relabel.Config
	// last maps a source series' hash to what it became, so an unchanged
	// series reuses its labels instead of building them again.
	last map[uint64]series
	// lastT is the time (ms) of the last snapshot taken.
	lastT int64
}

type series struct {
	in, out labels.Labels
	keep    bool
}

func newSnapshotter(src rules.Source, external labels.Labels, rcs []*relabel.Config) *snapshotter {
	return &snapshotter{src: src, external: external, relabel: rcs, last: map[uint64]series{}}
}

// take reads every series at ts and returns its samples. A read error
// keeps what was read and marks nothing stale.
//
// A snapshot in the same millisecond as the previous one, or earlier (the
// wall clock stepped back), is not taken: it would repeat the timestamps
// of the one before or go back in time, and a receiver rejects a batch
// holding a second value at the same timestamp or an out-of-order sample
// (Prometheus answers 400, and the batch is dropped). Two ticks of the
// snapshot ticker come within a millisecond when the first was late.
func (s *snapshotter) take(ts time.Time) ([]sample, error) {
	if !s.due(ts) {
		return nil, nil
	}
	t := ts.UnixMilli()
	s.lastT = t
	seen := make(map[uint64]series, len(s.last))
	out := make([]sample, 0, len(s.last))
	b := labels.NewBuilder(labels.EmptyLabels())
	err := s.src(func(string) bool { return true }, func(lset labels.Labels, v float64) {
		h := lset.Hash()
		if _, dup := seen[h]; dup {
			return
		}
		sr, ok := s.last[h]
		if !ok || !labels.Equal(sr.in, lset) {
			sr = s.build(b, lset)
		}
		seen[h] = sr
		if sr.keep {
			out = append(out, sample{lset: sr.out, t: t, v: v})
		}
	})
	if err != nil {
		for h, sr := range s.last {
			if _, ok := seen[h]; !ok {
				seen[h] = sr
			}
		}
		s.last = seen
		return out, err
	}
	stale := math.Float64frombits(value.StaleNaN)
	for h, sr := range s.last {
		if _, ok := seen[h]; !ok && sr.keep {
			out = append(out, sample{lset: sr.out, t: t, v: stale})
		}
	}
	s.last = seen
	return out, nil
}

// due reports whether a snapshot at ts would be taken: it is later, to the
// millisecond, than the last one.
func (s *snapshotter) due(ts time.Time) bool { return ts.UnixMilli() > s.lastT }

// build copies a source series and works out its labels for the remote.
func (s *snapshotter) build(b *labels.Builder, lset labels.Labels) series {
	sr := series{in: lset.Copy()}
	b.Reset(sr.in)
	s.external.Range(func(l labels.Label) {
		if !sr.in.Has(l.Name) {
			b.Set(l.Name, l.Value)
		}
	})
	if len(s.relabel) == 0 {
		sr.out, sr.keep = b.Labels(), true
		return sr
	}
	sr.keep = relabel.ProcessBuilder(b, s.relabel...)
	if sr.keep {
		sr.out = b.Labels()
		sr.keep = sr.out.Get(model.MetricNameLabel) != ""
	}
	return sr
}
