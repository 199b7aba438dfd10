package rules

import (
	"context"
	"math"
	"slices"
	"sort"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// samplesPerChunk is when a head chunk is cut, as in Prometheus' head.
const samplesPerChunk = 120

// Store is an in-memory time series store: per series, closed XOR chunks
// and one head chunk being appended to. It implements storage.Queryable.
type Store struct {
	mu     sync.RWMutex
	series map[uint64][]*memSeries // by label hash; a slice for collisions
	// byName indexes series by metric name: nearly every selector names
	// its metric, so a query touches only those series.
	byName map[string][]*memSeries
	count  int
}

type memSeries struct {
	lset   labels.Labels
	closed []chunks.Meta
	head   *chunkenc.XORChunk
	app    chunkenc.Appender
	hmin   int64
	lastT  int64
	lastV  float64
}

var _ storage.Queryable = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{series: map[uint64][]*memSeries{}, byName: map[string][]*memSeries{}}
}

// Append adds a sample (t in milliseconds). Samples at or before the
// series' last timestamp are dropped, as Prometheus drops out-of-order ones.
func (s *Store) Append(lset labels.Labels, t int64, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.getOrCreate(lset)
	if ms.head != nil && t <= ms.lastT {
		return
	}
	if ms.head == nil || ms.head.NumSamples() >= samplesPerChunk {
		if ms.head != nil {
			ms.closed = append(ms.closed, chunks.Meta{Chunk: ms.head, MinTime: ms.hmin, MaxTime: ms.lastT})
		}
		ms.head = chunkenc.NewXORChunk()
		ms.app, _ = ms.head.Appender()
		ms.hmin = t
	}
	ms.app.Append(0, t, v)
	ms.lastT, ms.lastV = t, v
}

func (s *Store) getOrCreate(lset labels.Labels) *memSeries {
	h := lset.Hash()
	for _, ms := range s.series[h] {
		if labels.Equal(ms.lset, lset) {
			return ms
		}
	}
	ms := &memSeries{lset: lset.Copy()}
	s.series[h] = append(s.series[h], ms)
	name := ms.lset.Get(model.MetricNameLabel)
	s.byName[name] = append(s.byName[name], ms)
	s.count++
	return ms
}

// MarkStale appends Prometheus' stale marker to a series that disappeared,
// so queries stop returning it at once instead of after the lookback.
func (s *Store) MarkStale(lset labels.Labels, t int64) {
	s.Append(lset, t, math.Float64frombits(value.StaleNaN))
}

// Truncate drops chunks that end before mint and series left empty.
func (s *Store) Truncate(mint int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, list := range s.series {
		kept := list[:0]
		for _, ms := range list {
			i := 0
			for i < len(ms.closed) && ms.closed[i].MaxTime < mint {
				i++
			}
			ms.closed = ms.closed[i:]
			if len(ms.closed) == 0 && ms.lastT < mint {
				s.count--
				s.unindex(ms)
				continue
			}
			kept = append(kept, ms)
		}
		if len(kept) == 0 {
			delete(s.series, h)
		} else {
			s.series[h] = kept
		}
	}
}

func (s *Store) unindex(ms *memSeries) {
	name := ms.lset.Get(model.MetricNameLabel)
	list := s.byName[name]
	for i, x := range list {
		if x == ms {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.byName, name)
	} else {
		s.byName[name] = list
	}
}

// candidates are the series a selector can match: those of its metric
// name when it names one, else all.
func (s *Store) candidates(ms []*labels.Matcher, visit func(*memSeries)) {
	for _, m := range ms {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			for _, x := range s.byName[m.Value] {
				visit(x)
			}
			return
		}
	}
	for _, list := range s.series {
		for _, x := range list {
			visit(x)
		}
	}
}

// Stats reports series, samples and the bytes their chunks take.
func (s *Store) Stats() (series, samples, bytes int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, list := range s.series {
		for _, ms := range list {
			series++
			for _, c := range ms.closed {
				samples += c.Chunk.NumSamples()
				bytes += len(c.Chunk.Bytes())
			}
			if ms.head != nil {
				samples += ms.head.NumSamples()
				bytes += len(ms.head.Bytes())
			}
		}
	}
	return
}

// Querier implements storage.Queryable.
func (s *Store) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{s: s, mint: mint, maxt: maxt}, nil
}

type querier struct {
	s          *Store
	mint, maxt int64
}

// matching returns the series whose labels match, with the chunks that
// overlap the querier's range. The head chunk is copied: appends continue
// while the query reads.
func (q *querier) matching(ms ...*labels.Matcher) []storage.ChunkSeries {
	q.s.mu.RLock()
	defer q.s.mu.RUnlock()
	var out []storage.ChunkSeries
	q.s.candidates(ms, func(m *memSeries) {
		if !matches(m.lset, ms) {
			return
		}
		var metas []chunks.Meta
		for _, c := range m.closed {
			if c.MaxTime >= q.mint && c.MinTime <= q.maxt {
				metas = append(metas, c)
			}
		}
		if m.head != nil && m.lastT >= q.mint && m.hmin <= q.maxt {
			head, _ := chunkenc.FromData(chunkenc.EncXOR, slices.Clone(m.head.Bytes()))
			metas = append(metas, chunks.Meta{Chunk: head, MinTime: m.hmin, MaxTime: m.lastT})
		}
		if len(metas) == 0 {
			return
		}
		out = append(out, &storage.ChunkSeriesEntry{Lset: m.lset, ChunkIteratorFn: func(chunks.Iterator) chunks.Iterator {
			return storage.NewListChunkSeriesIterator(metas...)
		}})
	})
	return out
}

func matches(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

// Select implements storage.Querier.
func (q *querier) Select(_ context.Context, sortSeries bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	list := q.matching(ms...)
	if sortSeries {
		sort.Slice(list, func(i, j int) bool { return labels.Compare(list[i].Labels(), list[j].Labels()) < 0 })
	}
	return storage.NewSeriesSetFromChunkSeriesSet(&chunkSeriesSet{list: list, i: -1})
}

// LabelValues implements storage.LabelQuerier.
func (q *querier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]bool{}
	for _, s := range q.matching(ms...) {
		if v := s.Labels().Get(name); v != "" {
			seen[v] = true
		}
	}
	return sortedKeys(seen), nil, nil
}

// LabelNames implements storage.LabelQuerier.
func (q *querier) LabelNames(_ context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]bool{}
	for _, s := range q.matching(ms...) {
		s.Labels().Range(func(l labels.Label) { seen[l.Name] = true })
	}
	return sortedKeys(seen), nil, nil
}

func (q *querier) Close() error { return nil }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type chunkSeriesSet struct {
	list []storage.ChunkSeries
	i    int
}

func (c *chunkSeriesSet) Next() bool                        { c.i++; return c.i < len(c.list) }
func (c *chunkSeriesSet) At() storage.ChunkSeries           { return c.list[c.i] }
func (c *chunkSeriesSet) Err() error                        { return nil }
func (c *chunkSeriesSet) Warnings() annotations.Annotations { return nil }
