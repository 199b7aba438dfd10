package rules

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"

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
	// byID are the series by id (ids follow creation; nil for a dropped
	// series until Truncate renumbers).
	byID []*memSeries
	// postings list the ids of the series with each label name and value,
	// in order, as Prometheus' head does: a selector reads the
	// intersection of its equality matchers' lists — at thousands of
	// checks, vigil_check_success{team="x"} reads the team's checks, not
	// every check's nor every series of the team.
	postings map[string]map[string][]uint32
	count    int
	// chunkRange is where histogram chunks are cut at the latest.
	chunkRange int64
}

type memSeries struct {
	lset   labels.Labels
	id     uint32
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
	return &Store{series: map[uint64][]*memSeries{}, postings: map[string]map[string][]uint32{}, chunkRange: prometheusChunkRange}
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
	ms := &memSeries{lset: lset.Copy(), id: uint32(len(s.byID))}
	s.series[h] = append(s.series[h], ms)
	s.byID = append(s.byID, ms)
	ms.lset.Range(func(l labels.Label) {
		values := s.postings[l.Name]
		if values == nil {
			values = map[string][]uint32{}
			s.postings[l.Name] = values
		}
		values[l.Value] = append(values[l.Value], ms.id)
	})
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
	dropped := false
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
				s.byID[ms.id] = nil
				dropped = true
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
	if dropped {
		s.renumber()
	}
}

// renumber gives the series left consecutive ids, in the same order, and
// rewrites the postings without the dropped ones.
func (s *Store) renumber() {
	const gone = math.MaxUint32
	newID := make([]uint32, len(s.byID))
	kept := s.byID[:0]
	for i, ms := range s.byID {
		if ms == nil {
			newID[i] = gone
			continue
		}
		newID[i] = uint32(len(kept))
		ms.id = newID[i]
		kept = append(kept, ms)
	}
	clear(s.byID[len(kept):])
	s.byID = kept
	for name, values := range s.postings {
		for v, list := range values {
			out := list[:0]
			for _, id := range list {
				if n := newID[id]; n != gone {
					out = append(out, n)
				}
			}
			if len(out) == 0 {
				delete(values, v)
			} else {
				values[v] = out
			}
		}
		if len(values) == 0 {
			delete(s.postings, name)
		}
	}
}

// candidates visits the series a selector can match: the intersection of
// the postings of its matchers that name values (equality, or a regexp
// that is a set of alternatives), or every series when none does.
func (s *Store) candidates(ms []*labels.Matcher, visit func(*memSeries)) {
	var lists [][]uint32
	for _, m := range ms {
		var values []string
		switch m.Type {
		case labels.MatchEqual:
			values = []string{m.Value}
		case labels.MatchRegexp:
			values = m.SetMatches()
		}
		if len(values) == 0 || slices.Contains(values, "") {
			continue // "" also matches series without the label
		}
		var list []uint32
		if len(values) == 1 {
			list = s.postings[m.Name][values[0]]
		} else {
			for _, v := range values {
				list = append(list, s.postings[m.Name][v]...)
			}
			slices.Sort(list)
		}
		if len(list) == 0 {
			return
		}
		lists = append(lists, list)
	}
	if len(lists) == 0 {
		for _, x := range s.byID {
			if x != nil {
				visit(x)
			}
		}
		return
	}
	slices.SortFunc(lists, func(a, b []uint32) int { return len(a) - len(b) })
	rest := lists[1:]
next:
	for _, id := range lists[0] {
		for i, l := range rest {
			// Galloping would be faster on long lists; a binary search
			// over what is left of each is enough here.
			j, found := slices.BinarySearch(l, id)
			if j == len(l) {
				return
			}
			rest[i] = l[j:]
			if !found {
				continue next
			}
		}
		visit(s.byID[id])
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

// overlaps tells whether the series has chunks with samples in [mint, maxt].
func (ms *memSeries) overlaps(mint, maxt int64) bool {
	for _, c := range ms.closed {
		if c.MaxTime >= mint && c.MinTime <= maxt {
			return true
		}
	}
	return ms.headChunk() != nil && ms.lastT >= mint && ms.hmin <= maxt
}

// each visits the labels of the series that match and have samples in
// the querier's range.
func (q *querier) each(ms []*labels.Matcher, visit func(*memSeries)) {
	q.s.candidates(ms, func(m *memSeries) {
		if matches(m.lset, ms) && m.overlaps(q.mint, q.maxt) {
			visit(m)
		}
	})
}

// matching returns the series whose labels match, with the chunks that
// overlap the querier's range. Head chunks are copied — appends continue
// while the query reads — into one buffer, and the series and their chunk
// lists are allocated together too: a rule's selector may match
// thousands of series, and one allocation each was most of a round's
// garbage.
func (q *querier) matching(ms ...*labels.Matcher) []querySeries {
	q.s.mu.RLock()
	defer q.s.mu.RUnlock()
	var found []*memSeries
	nmetas, nbytes := 0, 0
	q.each(ms, func(m *memSeries) {
		found = append(found, m)
		for _, c := range m.closed {
			if c.MaxTime >= q.mint && c.MinTime <= q.maxt {
				nmetas++
			}
		}
		if c := m.headChunk(); c != nil && m.lastT >= q.mint && m.hmin <= q.maxt {
			nmetas++
			nbytes += len(c.Bytes())
		}
	})
	out := make([]querySeries, 0, len(found))
	chks := make([]chunkenc.Iterable, 0, nmetas)
	buf := make([]byte, 0, nbytes)
	for _, m := range found {
		start := len(chks)
		for _, c := range m.closed {
			if c.MaxTime >= q.mint && c.MinTime <= q.maxt {
				chks = append(chks, c.Chunk)
			}
		}
		if c := m.headChunk(); c != nil && m.lastT >= q.mint && m.hmin <= q.maxt {
			from := len(buf)
			buf = append(buf, c.Bytes()...)
			head, _ := chunkenc.FromData(c.Encoding(), buf[from:len(buf):len(buf)])
			chks = append(chks, head)
		}
		out = append(out, querySeries{lset: m.lset, chunks: chks[start:len(chks):len(chks)]})
	}
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
		slices.SortFunc(list, func(a, b querySeries) int { return labels.Compare(a.lset, b.lset) })
	}
	return &seriesSet{list: list, i: -1}
}

// LabelValues implements storage.LabelQuerier.
func (q *querier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]bool{}
	q.s.mu.RLock()
	q.each(ms, func(m *memSeries) {
		if v := m.lset.Get(name); v != "" {
			seen[v] = true
		}
	})
	q.s.mu.RUnlock()
	return sortedKeys(seen), nil, nil
}

// LabelNames implements storage.LabelQuerier.
func (q *querier) LabelNames(_ context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]bool{}
	q.s.mu.RLock()
	q.each(ms, func(m *memSeries) {
		m.lset.Range(func(l labels.Label) { seen[l.Name] = true })
	})
	q.s.mu.RUnlock()
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

type seriesSet struct {
	list []querySeries
	i    int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.list) }
func (s *seriesSet) At() storage.Series                { return &s.list[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// querySeries is a series as a query sees it: its labels and the chunks
// in the query's range, oldest first, not overlapping. It reads them with
// storage's chain iterator, as a TSDB querier's series does: the first
// histogram of a chunk, and the first after a Seek, has no counter-reset
// hint, since it is not known to follow the sample before.
type querySeries struct {
	lset   labels.Labels
	chunks []chunkenc.Iterable
}

func (s *querySeries) Labels() labels.Labels { return s.lset }

func (s *querySeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	return storage.ChainSampleIteratorFromIterables(it, s.chunks)
}
