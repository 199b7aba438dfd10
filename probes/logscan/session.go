package logscan

import (
	"log/slog"
	"time"

	"github.com/vigil-project/vigil/probes"
)

// Exported counters are only ever ones that a checkpoint already holds:
// after a kill -9 the next agent resumes from the last checkpoint, so any
// value exported beyond it would be taken back (Prometheus would see a
// counter reset). To keep them fresh anyway, a scrape asks the reader to
// checkpoint what it has counted and waits for it.
const (
	// collectWait bounds a scrape's wait for that checkpoint; past it the
	// scrape gets the values saved before (older, never ahead).
	collectWait = 200 * time.Millisecond
	// scrapeSaveGap is the least time between checkpoints that scrapes
	// ask for, so that scraping in a loop costs at most 1/scrapeSaveGap
	// saves a second (two fsyncs each: the file and its directory).
	scrapeSaveGap = 100 * time.Millisecond
)

// session is one life of the reader inside Run: restored from the
// checkpoint, checkpointing as it reads, and publishing only what it has
// saved. A kill -9 is a session dropped without close.
type session struct {
	l        *Logscan
	t        *tailer
	log      *slog.Logger
	lastSave time.Time
	// answered is the last Collect request that a publication covers.
	answered uint64
	// failing: the last save failed (logged once per run of failures).
	failing bool
}

// open restores the checkpoint and saves at once, so that what the restore
// found (a rotation or truncation while the agent was down) is durable
// before it is exported, and an agent that dies young leaves its successor
// a checkpoint.
func (l *Logscan) open(log *slog.Logger) *session {
	m, _, _ := newMatcher(l.patterns)
	l.c.reset()
	t := newTailer(l.cfg, m, l.c, log)
	if l.stateFile != "" {
		cp, ok, err := loadCheckpoint(l.stateFile)
		if err != nil {
			log.Error("logscan checkpoint not usable; starting afresh", "err", err)
		}
		if ok {
			t.restore(cp)
		}
	}
	s := &session{l: l, t: t, log: log}
	t.progress = s.progress
	totals, lines := l.c.totals()
	l.mu.Lock()
	l.evaluated, l.lines = totals, lines
	l.mu.Unlock()
	s.save()
	return s
}

// pass reads what is new. It checkpoints when the set of files changes,
// before reading (a file being read is then always in the saved state, and
// a restart after it rotated away finds it again), when a truncation is
// found (through progress), every checkpoint_interval, and when a scrape
// waits for fresh values.
func (s *session) pass() {
	if s.t.discover() {
		s.save()
	}
	s.t.readAll()
	if s.t.dirty && time.Since(s.lastSave) >= time.Duration(s.l.cfg.CheckpointInterval) {
		s.save()
	}
	s.serve()
}

// progress is the tailer's hook between reads (the state is consistent).
// Besides truncations it saves during a long read what would be saved
// between passes, so that scrapes do not wait for the read to end.
func (s *session) progress(urgent bool) {
	since := time.Since(s.lastSave)
	if urgent || since >= time.Duration(s.l.cfg.CheckpointInterval) ||
		(s.l.want.Load() != s.answered && since >= scrapeSaveGap) {
		s.save()
	}
}

// serve answers the scrapes waiting in Collect: with a checkpoint when
// anything was counted since the last one, otherwise (or right after one)
// with the values already published.
func (s *session) serve() {
	want := s.l.want.Load()
	if want == s.answered {
		return
	}
	if s.t.dirty && time.Since(s.lastSave) >= scrapeSaveGap {
		s.save()
		return
	}
	s.answered = want
	s.l.publishCounts(nil, want)
}

// save writes the checkpoint, then publishes its counters. A failed save
// (a full disk) still publishes: alerts on the counters matter more than
// the chance of a kill -9 before the disk recovers, when the counters would
// go back to the last saved ones. The save is retried at the next chance.
func (s *session) save() {
	want := s.l.want.Load() // requests made before the snapshot are covered by it
	cp := s.t.snapshot()
	s.t.dirty = false
	if s.l.stateFile != "" {
		if err := saveCheckpoint(s.l.stateFile, cp); err != nil {
			if !s.failing {
				s.log.Error("logscan checkpoint not saved; until it is, a crash can take back exported counts", "err", err)
			}
			s.failing, s.t.dirty = true, true
		} else if s.failing {
			s.log.Info("logscan checkpoint saved again")
			s.failing = false
		}
	}
	s.lastSave = time.Now()
	s.answered = want
	s.l.publishCounts(&cp.counts, want)
}

// close saves a last time and releases the files (a graceful stop).
func (s *session) close() {
	s.save()
	s.t.close()
}

// publishCounts makes k (when given) the exported counters and wakes the
// scrapes waiting for request want or an earlier one.
func (l *Logscan) publishCounts(k *counts, want uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k != nil {
		l.pub = k
	}
	l.done = max(l.done, want)
	close(l.pubCh)
	l.pubCh = make(chan struct{})
}

// setRunning records whether Run serves scrapes, waking those that wait.
func (l *Logscan) setRunning(v bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running = v
	close(l.pubCh)
	l.pubCh = make(chan struct{})
}

// exported returns what Collect shows; the caller holds mu.
func (l *Logscan) exported() []probes.Value {
	if l.pub == nil && l.managed && l.stateFile != "" && !l.running {
		// The agent starting, or a check replaced by a new one: until Run
		// has restored the checkpoint, export what the checkpoint holds.
		// The previous reader never exported more, so nothing goes back.
		if cp, _, err := loadCheckpoint(l.stateFile); err == nil {
			c := newCounters(l.patterns)
			c.load(cp.counts) // only the patterns still configured
			k := c.counts()
			l.pub = &k
		}
	}
	if l.pub != nil {
		return l.pub.values(l.files)
	}
	return l.c.values(l.files)
}
