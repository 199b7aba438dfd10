package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/testenv"
)

// model is what the store should answer: every record in write order.
type model struct{ recs []Record }

// history is a check's records newest first: by start, and among equal
// starts the one written later first.
func (m *model) history(check string) []Record {
	var out []Record
	for _, r := range m.recs {
		if r.Check == check {
			out = append(out, r)
		}
	}
	slices.Reverse(out) // later writes first, kept by the stable sort
	slices.SortStableFunc(out, func(a, b Record) int { return b.Result.Start.Compare(a.Result.Start) })
	return out
}

func (m *model) firstFailure(check string, at time.Time) (time.Time, bool) {
	var lastPass, first time.Time
	passed, failed := false, false
	for _, r := range m.recs {
		if r.Check == check && !r.Result.Start.After(at) && r.Result.Success && (!passed || r.Result.Start.After(lastPass)) {
			lastPass, passed = r.Result.Start, true
		}
	}
	for _, r := range m.recs {
		if r.Check != check || r.Result.Success || r.Result.Start.After(at) || passed && !r.Result.Start.After(lastPass) {
			continue
		}
		if !failed || r.Result.Start.Before(first) {
			first, failed = r.Result.Start, true
		}
	}
	return first, failed
}

func (m *model) hours(check string) map[int64]Counts {
	out := map[int64]Counts{}
	for _, r := range m.recs {
		if r.Check == check {
			h := hourOf(r.Result.Start.UnixMilli())
			c := out[h]
			c.Runs++
			if r.Result.Success {
				c.OK++
			}
			out[h] = c
		}
	}
	return out
}

// TestMergeIsInvisible writes records of a few checks (equal starts,
// starts out of order, before 1970) with merges of all or part of
// recent_results in between, and after each step holds every reader to a
// model of the records: a merge changes where rows are, never what a
// reader sees.
func TestMergeIsInvisible(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
			s.mergeChunk = 2 // several transactions per merge
			rng := rand.New(rand.NewPCG(seed, 21))
			checks := []string{"a", "b", "c", "d", "e"}
			base := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
			if seed == 3 {
				base = time.UnixMilli(-2 * 3_600_000) // hours before 1970
			}
			m := &model{}
			for step := range 12 {
				for range 1 + rng.IntN(15) {
					check := checks[rng.IntN(len(checks))]
					// Starts within two hours, on a coarse grid so that
					// equal starts are common, and in any order.
					start := base.Add(time.Duration(rng.IntN(40)) * 3 * time.Minute)
					r := sample(check, start, rng.IntN(3) != 0)
					r.Result.Message = fmt.Sprintf("w%d", len(m.recs)) // identifies the write
					m.recs = append(m.recs, r)
					s.Record(r)
				}
				flush(t, s)
				switch step % 3 {
				case 1:
					mergeAll(t, s)
				case 2:
					// Part of the checks only, as when a merge stops
					// between its transactions.
					var upto int64
					if err := s.w.QueryRow(`SELECT max(id) FROM recent_results`).Scan(&upto); err != nil {
						t.Fatal(err)
					}
					if _, _, err := s.mergeRange(ctx, 0, 2, upto, nil); err != nil {
						t.Fatal(err)
					}
				}
				assertReaders(t, s, m, checks, base)
			}
		})
	}
}

func assertReaders(t *testing.T, s *Store, m *model, checks []string, base time.Time) {
	t.Helper()
	ctx := context.Background()
	id := func(rs []Record) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Result.Message)
		}
		return out
	}
	sums, err := s.SummariesOf(ctx, checks, 7)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := s.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, check := range checks {
		want := m.history(check)
		got, err := s.History(ctx, check, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(id(got), id(want)) {
			t.Fatalf("History(%s) = %v, want %v", check, id(got), id(want))
		}
		if got, _ := s.History(ctx, check, 3); !slices.Equal(id(got), id(want[:min(3, len(want))])) {
			t.Errorf("History(%s, 3) = %v, want %v", check, id(got), id(want[:min(3, len(want))]))
		}
		sum, err := s.Summaries(ctx, check, 5)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []string
		for _, sm := range sum {
			msgs = append(msgs, sm.Message)
		}
		if w := id(want[:min(5, len(want))]); !slices.Equal(msgs, w) {
			t.Errorf("Summaries(%s, 5) = %v, want %v", check, msgs, w)
		}
		msgs = nil
		for _, sm := range sums[check] {
			msgs = append(msgs, sm.Message)
		}
		if w := id(want[:min(7, len(want))]); !slices.Equal(msgs, w) {
			t.Errorf("SummariesOf(%s, 7) = %v, want %v", check, msgs, w)
		}
		if len(want) > 0 && latest[check].Result.Message != want[0].Result.Message {
			t.Errorf("Latest[%s] = %s, want %s", check, latest[check].Result.Message, want[0].Result.Message)
		}
		from, to := base.Add(30*time.Minute), base.Add(90*time.Minute)
		between, err := s.HistoryBetween(ctx, check, from, to, 100)
		if err != nil {
			t.Fatal(err)
		}
		var wantBetween []Record
		for _, r := range slices.Backward(want) {
			if !r.Result.Start.Before(from) && !r.Result.Start.After(to) {
				wantBetween = append(wantBetween, r)
			}
		}
		if !slices.Equal(id(between), id(wantBetween)) {
			t.Errorf("HistoryBetween(%s) = %v, want %v", check, id(between), id(wantBetween))
		}
		for _, at := range []time.Duration{20 * time.Minute, 60 * time.Minute, 3 * time.Hour} {
			ff, ok, err := s.FirstFailure(ctx, check, base.Add(at))
			wf, wok := m.firstFailure(check, base.Add(at))
			if err != nil || ok != wok || !ff.Equal(wf) {
				t.Errorf("FirstFailure(%s, +%v) = %v %v %v, want %v %v", check, at, ff, ok, err, wf, wok)
			}
		}
		wantHours := m.hours(check)
		gotHours, err := s.Hours(ctx, []string{check}, base.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(gotHours) != len(wantHours) {
			t.Errorf("Hours(%s) = %v, want %v", check, gotHours, wantHours)
		}
		for _, h := range gotHours {
			if w := wantHours[h.Start.Unix()/3600]; w != h.Counts {
				t.Errorf("Hours(%s) at %v = %+v, want %+v", check, h.Start, h.Counts, w)
			}
		}
		var total Counts
		for _, c := range wantHours {
			total = total.Add(c)
		}
		up, err := s.CheckUptime(ctx, check, base.Add(3*time.Hour), []time.Duration{24 * time.Hour})
		if err != nil || up[0] != total {
			t.Errorf("CheckUptime(%s) = %v %v, want %+v", check, up, err, total)
		}
	}
	all, err := s.Uptime(ctx, base.Add(3*time.Hour), []time.Duration{24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, check := range checks {
		var total Counts
		for _, c := range m.hours(check) {
			total = total.Add(c)
		}
		if total.Runs > 0 && all[check][0] != total {
			t.Errorf("Uptime[%s] = %+v, want %+v", check, all[check], total)
		}
	}
}

// TestMergeNumbers checks the seq and n a merge gives: n counts a check's
// rows in write order across merges, seq numbers rows with one start in
// write order, so the sweep's counts stay exact.
func TestMergeNumbers(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	starts := []int{0, 1, 1, 2, 2, 2, 3} // minutes
	for round := range 3 {
		for _, m := range starts {
			s.Record(sample("x", t0.Add(time.Duration(round*10+m)*time.Minute), true))
		}
		s.Record(sample("y", t0.Add(time.Duration(round)*time.Minute), true))
		flush(t, s)
		mergeAll(t, s)
		assertCounts(t, s)
	}
	rows, err := s.r.Query(`SELECT started_at, seq, n FROM check_results WHERE check_id = (SELECT id FROM checks WHERE name = 'x')
		ORDER BY started_at, seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type key struct{ start, seq, n int64 }
	var got []key
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.start, &k.seq, &k.n); err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	var want []key
	for round := range 3 {
		prev, seq := int64(-1), int64(0)
		for _, m := range starts {
			ms := t0.Add(time.Duration(round*10+m) * time.Minute).UnixMilli()
			if ms == prev {
				seq++
			} else {
				seq = 0
			}
			prev = ms
			want = append(want, key{ms, seq, int64(len(want) + 1)})
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("(start, seq, n) = %v\nwant %v", got, want)
	}
	var waiting int
	if err := s.r.QueryRow(`SELECT count(*) FROM recent_results`).Scan(&waiting); err != nil || waiting != 0 {
		t.Errorf("%d rows left in recent_results after the merge (%v)", waiting, err)
	}
}

// TestMergeTriggers: the writer asks for a merge once mergeRows rows wait,
// and the merge loop moves them.
func TestMergeTriggers(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
	s.mergeRows = 50
	t0 := time.Now()
	for i := range 60 {
		s.Record(sample(fmt.Sprint("c", i%7), t0.Add(time.Duration(i)*time.Second), true))
	}
	flush(t, s)
	testenv.Eventually(t, 10*time.Second, "the merge", func() bool {
		var n int
		return s.r.QueryRow(`SELECT count(*) FROM recent_results`).Scan(&n) == nil && n == 0
	})
	if n := countRows(t, s); n != 60 {
		t.Errorf("%d rows after the merge, want 60", n)
	}
	if n := s.recent.rows.Load(); n != 0 {
		t.Errorf("%d rows counted as waiting after the merge", n)
	}
}

// BenchmarkReadsWithRecent measures the readers at 10,000 checks with 30
// merged runs each, with mergeRows runs waiting in recent_results (the
// most a reader scans) and after they are merged: what the scan of the
// unindexed table adds to a check page and an API page.
func BenchmarkReadsWithRecent(b *testing.B) {
	ctx := context.Background()
	const checks = 10_000
	s := openStore(b, filepath.Join(b.TempDir(), "vigil.db"), Options{})
	s.mergeRows = 1 << 40 // merged by hand below
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute)
	name := func(c int) string { return fmt.Sprintf("tenant-%05d", c) }
	write := func(from, minutes int) {
		batch := make([]row, 0, 256)
		for m := from; m < from+minutes; m++ {
			for c := range checks {
				batch = append(batch, encode(sample(name(c), t0.Add(time.Duration(m)*time.Minute+time.Duration(c)*time.Millisecond), c%13 != 0)))
				if len(batch) == cap(batch) {
					if err := s.insert(batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
		}
		if err := s.insert(batch); err != nil {
			b.Fatal(err)
		}
	}
	for m := 0; m < 30; m += 5 {
		write(m, 5)
		mergeAll(b, s)
	}
	write(30, int(mergeRows/checks))
	page := make([]string, 100)
	for i := range page {
		page[i] = name(4000 + i)
	}
	run := func(b *testing.B) {
		b.Run("History 30", func(b *testing.B) {
			for b.Loop() {
				if h, err := s.History(ctx, name(4321), 30); err != nil || len(h) != 30 {
					b.Fatalf("History = %d, %v", len(h), err)
				}
			}
		})
		b.Run("SummariesOf 100x30", func(b *testing.B) {
			for b.Loop() {
				if hs, err := s.SummariesOf(ctx, page, 30); err != nil || len(hs[page[99]]) != 30 {
					b.Fatalf("SummariesOf = %d, %v", len(hs), err)
				}
			}
		})
		b.Run("CheckUptime", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.CheckUptime(ctx, name(4321), time.Now(), []time.Duration{24 * time.Hour, 7 * 24 * time.Hour}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Uptime all 24h", func(b *testing.B) {
			for b.Loop() {
				if u, err := s.Uptime(ctx, time.Now(), []time.Duration{24 * time.Hour}); err != nil || len(u) != checks {
					b.Fatalf("Uptime = %d, %v", len(u), err)
				}
			}
		})
		b.Run("FirstFailure", func(b *testing.B) {
			for b.Loop() {
				if _, _, err := s.FirstFailure(ctx, name(4329), time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run(fmt.Sprintf("%d waiting", mergeRows), run)
	mergeAll(b, s)
	b.Run("merged", run)
}
