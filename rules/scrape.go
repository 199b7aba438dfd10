package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// Scraper appends the agent's own /metrics output to a store, the way a
// Prometheus scraping the agent would see it: same names, same labels, and
// stale markers for series that disappear — only the series its selection
// selects (all of them without one).
type Scraper struct {
	store *Store
	write func(io.Writer)
	buf   bytes.Buffer
	st    *labels.SymbolTable
	last  map[uint64]labels.Labels
	sel   *Selection
}

// Select limits what is stored to what sel selects; series no longer
// selected go stale at the next scrape. nil stores everything.
func (s *Scraper) Select(sel *Selection) { s.sel = sel }

// NewScraper reads what write produces (the exporter's WritePrometheus).
func NewScraper(store *Store, write func(io.Writer)) *Scraper {
	return &Scraper{store: store, write: write, st: labels.NewSymbolTable(), last: map[uint64]labels.Labels{}}
}

// Scrape appends one scrape at time now and returns the number of samples.
func (s *Scraper) Scrape(now time.Time) (int, error) {
	s.buf.Reset()
	s.write(&s.buf)
	t := now.UnixMilli()
	p := textparse.NewPromParser(s.buf.Bytes(), s.st, false)
	seen := make(map[uint64]labels.Labels, len(s.last))
	n := 0
	var lset labels.Labels
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("self-scrape: %w", err)
		}
		if e != textparse.EntrySeries {
			continue
		}
		_, _, v := p.Series()
		p.Labels(&lset)
		if s.sel != nil && !s.sel.Selects(lset) {
			continue
		}
		h := lset.Hash()
		if _, dup := seen[h]; dup {
			continue
		}
		seen[h] = lset.Copy()
		s.store.Append(lset, t, v)
		n++
	}
	for h, l := range s.last {
		if _, ok := seen[h]; !ok {
			s.store.MarkStale(l, t)
		}
	}
	s.last = seen
	return n, nil
}
