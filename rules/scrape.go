package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// Source is what a Scraper reads: it calls emit with the current value of
// every series whose metric name want accepts. lset is valid during the
// call only. The agent's exporter is one, read in-process; TextSource reads
// the text format.
type Source func(want func(name string) bool, emit func(lset labels.Labels, v float64)) error

// TextSource is the series of the Prometheus text format that write
// produces. A line that does not parse ends the read with an error.
func TextSource(write func(io.Writer)) Source {
	var buf bytes.Buffer
	st := labels.NewSymbolTable()
	var mu sync.Mutex
	return func(want func(string) bool, emit func(labels.Labels, float64)) error {
		mu.Lock()
		defer mu.Unlock()
		buf.Reset()
		write(&buf)
		p := textparse.NewPromParser(buf.Bytes(), st, false)
		var lset labels.Labels
		for {
			e, err := p.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("parse metrics text: %w", err)
			}
			if e != textparse.EntrySeries {
				continue
			}
			_, _, v := p.Series()
			p.Labels(&lset)
			if want(lset.Get(model.MetricNameLabel)) {
				emit(lset, v)
			}
		}
	}
}

// Sources reads each source in turn.
func Sources(srcs ...Source) Source {
	return func(want func(string) bool, emit func(labels.Labels, float64)) error {
		var errs []error
		for _, s := range srcs {
			errs = append(errs, s(want, emit))
		}
		return errors.Join(errs...)
	}
}

// Scraper appends the agent's own series to a store, the way a Prometheus
// scraping the agent would see them: same names, same labels, and stale
// markers for series that disappear — only the series its selection
// selects (all of them without one).
type Scraper struct {
	store *Store
	src   Source
	last  map[uint64]labels.Labels
	sel   *Selection
}

// Select limits what is stored to what sel selects; series no longer
// selected go stale at the next scrape. nil stores everything.
func (s *Scraper) Select(sel *Selection) { s.sel = sel }

// NewScraper reads src (the exporter).
func NewScraper(store *Store, src Source) *Scraper {
	return &Scraper{store: store, src: src, last: map[uint64]labels.Labels{}}
}

// Scrape appends one scrape at time now and returns the number of samples.
// After an error, what was read is kept but nothing is marked stale.
func (s *Scraper) Scrape(now time.Time) (int, error) {
	t := now.UnixMilli()
	seen := make(map[uint64]labels.Labels, len(s.last))
	n := 0
	want := func(string) bool { return true }
	if s.sel != nil {
		want = s.sel.Wants
	}
	err := s.src(want, func(lset labels.Labels, v float64) {
		if s.sel != nil && !s.sel.Selects(lset) {
			return
		}
		h := lset.Hash()
		if _, dup := seen[h]; dup {
			return
		}
		if l, ok := s.last[h]; ok && labels.Equal(l, lset) {
			seen[h] = l
		} else {
			seen[h] = lset.Copy()
		}
		s.store.Append(seen[h], t, v)
		n++
	})
	if err != nil {
		return n, fmt.Errorf("self-scrape: %w", err)
	}
	for h, l := range s.last {
		if _, ok := seen[h]; !ok {
			s.store.MarkStale(l, t)
		}
	}
	s.last = seen
	return n, nil
}
