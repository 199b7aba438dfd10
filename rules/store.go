package rules

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// samplesPerChunk is when a float head chunk is cut, as in Prometheus' head.
const samplesPerChunk = 120

// Chunk ranges, in milliseconds: Prometheus' head cuts a histogram chunk
// by size, but at the latest where its chunk range ends (ranges are
// aligned to multiples of it). Where chunks start shows in queries: the
// first histogram of a chunk has no counter-reset hint.
const (
	prometheusChunkRange = 2 * 60 * 60 * 1000  // Prometheus' head: 2h blocks
	promtoolChunkRange   = 24 * 60 * 60 * 1000 // promtool's test storage: 24h blocks
)

// Store is an in-memory time series store: per series, closed chunks (XOR
// for floats, float-histogram for native histograms) and one head chunk
// being appended to. It implements storage.Queryable.
type Store struct {
	mu     sync.RWMutex
	series map[uint64][]*memSeries // by label hash; a slice for collisions
	// byName indexes series by metric name: nearly every selector names
	// its metric, so a query touches only those series.
	byName map[string][]*memSeries
	count  int
	// chunkRange is where histogram chunks are cut at the latest.
	chunkRange int64
}

type memSeries struct {
	lset   labels.Labels
	closed []chunks.Meta
	// The head chunk being appended to: xor while the series gets float
	// samples, hist while it gets native histograms; at most one is set.
	// A sample of the other type cuts a new head, as in Prometheus' head.
	// (The histogram state is behind a pointer so that float series stay
	// as small as they were.)
	xor   *chunkenc.XORChunk
	hist  *histHead
	app   chunkenc.Appender
	hmin  int64
	lastT int64
}

// histHead is a float-histogram head chunk and when it is to be cut.
type histHead struct {
	chunk *chunkenc.FloatHistogramChunk
	// nextAt is when the chunk is cut (Prometheus' head: the range's end,
	// then an estimate once the chunk is a quarter full).
	nextAt    int64
	estimated bool
}

// headChunk is the head chunk, whichever its encoding, or nil.
func (ms *memSeries) headChunk() chunkenc.Chunk {
	switch {
	case ms.xor != nil:
		return ms.xor
	case ms.hist != nil:
		return ms.hist.chunk
	}
	return nil
}

// closeHead moves the head chunk, if any, to the closed ones.
func (ms *memSeries) closeHead() {
	if c := ms.headChunk(); c != nil {
		ms.closed = append(ms.closed, chunks.Meta{Chunk: c, MinTime: ms.hmin, MaxTime: ms.lastT})
	}
	ms.xor, ms.hist = nil, nil
}

var _ storage.Queryable = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{series: map[uint64][]*memSeries{}, byName: map[string][]*memSeries{}, chunkRange: prometheusChunkRange}
}

// Append adds a sample (t in milliseconds). Samples at or before the
// series' last timestamp are dropped, as Prometheus drops out-of-order ones.
func (s *Store) Append(lset labels.Labels, t int64, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.getOrCreate(lset)
	if (ms.xor != nil || ms.hist != nil) && t <= ms.lastT {
		return
	}
	if ms.hist != nil && value.IsStaleNaN(v) {
		// As in Prometheus' head: the stale marker of a histogram series
		// is a histogram whose sum is the stale NaN.
		ms.appendHistogram(t, &histogram.FloatHistogram{Sum: v}, s.chunkRange)
		return
	}
	if ms.xor == nil || ms.xor.NumSamples() >= samplesPerChunk {
		ms.closeHead()
		ms.xor = chunkenc.NewXORChunk()
		ms.app, _ = ms.xor.Appender()
		ms.hmin = t
	}
	ms.app.Append(0, t, v)
	ms.lastT = t
}

// AppendHistogram adds a native-histogram sample (t in milliseconds),
// dropped like Append's when out of order. The store keeps its own copy.
// As in Prometheus' head, the chunk records counter resets: a histogram
// that is not a continuation of the one before starts a new chunk.
func (s *Store) AppendHistogram(lset labels.Labels, t int64, fh *histogram.FloatHistogram) error {
	if err := fh.Validate(); err != nil {
		return fmt.Errorf("histogram sample for %s: %w", lset, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.getOrCreate(lset)
	if (ms.xor != nil || ms.hist != nil) && t <= ms.lastT {
		return nil
	}
	ms.appendHistogram(t, fh.Copy(), s.chunkRange)
	return nil
}

// appendHistogram appends to the float-histogram head chunk, cutting one
// when the series had floats or the head is due (cutDue). A head
// cut for being due is passed on as prev, so the new chunk's header says
// whether it starts with a counter reset; after floats there is nothing to
// continue from.
func (ms *memSeries) appendHistogram(t int64, fh *histogram.FloatHistogram, chunkRange int64) {
	var prev chunkenc.Appender
	switch {
	case ms.hist == nil:
		ms.newHistogramHead(t, chunkRange)
	case ms.hist.cutDue(t, ms.hmin, ms.lastT, chunkRange):
		prev = ms.app
		ms.newHistogramHead(t, chunkRange)
	}
	// With appendOnly false the appender does not fail: a counter reset
	// or an incompatible bucket layout comes back as a new chunk, a layout
	// it can widen as the recoded head.
	c, recoded, app, _ := ms.app.(*chunkenc.FloatHistogramAppender).AppendFloatHistogram(prev, 0, t, fh, false)
	switch {
	case c == nil:
	case recoded:
		ms.hist.chunk, ms.app = c.(*chunkenc.FloatHistogramChunk), app
	default:
		// Prometheus' head sets the new chunk's range end but keeps the
		// estimate state of the chunk before.
		h := *ms.hist
		ms.closeHead()
		h.chunk, h.nextAt = c.(*chunkenc.FloatHistogramChunk), rangeEnd(t, chunkRange)
		ms.hist, ms.app, ms.hmin = &h, app, t
	}
	ms.lastT = t
}

func (ms *memSeries) newHistogramHead(t, chunkRange int64) {
	ms.closeHead()
	ms.hist = &histHead{chunk: chunkenc.NewFloatHistogramChunk(), nextAt: rangeEnd(t, chunkRange)}
	ms.app, _ = ms.hist.chunk.Appender()
	ms.hmin = t
}

// cutDue tells whether a sample at t starts a new chunk after this one,
// which holds samples from mint to maxt, by Prometheus' head's rule: when
// a quarter of the target size is reached, estimate an end that spreads
// the rest of the range over equal chunks; cut at that end or at twice the
// target size, but not before the chunk holds
// chunkenc.MinSamplesPerHistogramChunk samples unless its range ended.
func (h *histHead) cutDue(t, mint, maxt, chunkRange int64) bool {
	n, size := h.chunk.NumSamples(), len(h.chunk.Bytes())
	end := h.nextAt
	if h.estimated {
		end = rangeEnd(mint, chunkRange)
	}
	const target = chunkenc.TargetBytesPerHistogramChunk
	if !h.estimated && size >= target/4 {
		h.nextAt = estimateChunkEnd(mint, maxt, h.nextAt, float64(target)/float64(size))
		h.estimated = true
	}
	return (t >= h.nextAt || size >= 2*target) && (n >= chunkenc.MinSamplesPerHistogramChunk || t >= end)
}

// rangeEnd is the end of the chunk range t falls in.
func rangeEnd(t, chunkRange int64) int64 {
	return (t/chunkRange)*chunkRange + chunkRange
}

// estimateChunkEnd: a chunk from start to cur is 1/ratioToFull full; if
// samples keep coming at that rate, ending it here splits the time up to
// maxT into equal chunks.
func estimateChunkEnd(start, cur, maxT int64, ratioToFull float64) int64 {
	chunksLeft := float64(maxT-start) / (float64(cur-start+1) * ratioToFull)
	if chunksLeft <= 1 {
		return maxT
	}
	return start + int64(float64(maxT-start)/math.Floor(chunksLeft))
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
			if c := ms.headChunk(); c != nil {
				samples += c.NumSamples()
				bytes += len(c.Bytes())
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
		if c := m.headChunk(); c != nil && m.lastT >= q.mint && m.hmin <= q.maxt {
			head, _ := chunkenc.FromData(c.Encoding(), slices.Clone(c.Bytes()))
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
