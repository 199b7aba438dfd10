package store

import (
	"context"
	"os"
	"time"
)

// Checkpoints copy committed pages from the WAL into the database file.
// SQLite's default runs one inside whichever commit pushes the WAL past
// 1000 pages, so that commit (a batch of results, or an outbox write) also
// pays for writing 4 MB into the file and an fsync: tens of milliseconds,
// the largest part of the writers' p99 while the retention sweep made the
// WAL grow fast. Here a background goroutine checkpoints instead (PASSIVE:
// it never waits for or blocks a writer) at the same WAL size, checking at
// most once per checkpointEvery and only after a write, so an idle agent
// stays idle; the sweep checkpoints between its transactions. The writer's
// own automatic checkpoint stays as a backstop, at writerAutoCheckpoint
// pages, for a checkpointer that cannot keep up.
//
// The WAL's size on disk is its content because journal_size_limit is 0:
// SQLite truncates the file when it starts reusing it after a checkpoint.
// That also keeps a full disk from going unnoticed: the WAL grows into new
// blocks again after each checkpoint, so writes fail (and are counted)
// within one WAL's worth of writes after the disk fills, as with SQLite's
// own checkpoints, not only once the database file itself must grow.
const (
	checkpointEvery      = time.Second
	checkpointAt         = 4 << 20 // bytes of WAL: SQLite's default of 1000 pages
	writerAutoCheckpoint = 10_000  // pages: 40 MB of WAL
)

// wrote tells the checkpointer that the WAL has grown.
func (s *Store) wrote() {
	select {
	case s.checkpointReq <- struct{}{}:
	default:
	}
}

// checkpointLoop runs until ctx is cancelled by Close; the last connection
// to close then checkpoints what is left.
func (s *Store) checkpointLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTimer(checkpointEvery)
	t.Stop()
	for {
		select {
		case <-s.checkpointReq:
		case <-ctx.Done():
			return
		}
		s.checkpoint(ctx)
		t.Reset(checkpointEvery)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// checkpoint copies the WAL into the database file once it holds
// checkpointAt. It uses the read pool: a PASSIVE checkpoint takes no write
// lock, and query_only does not refuse it.
//
// SQLite starts the WAL over only when a write transaction begins after a
// checkpoint has copied all of it. Between the history writer's commits
// (a few a second) there is time for that; the sweep commits every few
// milliseconds, so it checkpoints itself in its pauses (sweep.commit), or
// its WAL would grow until the writer's own checkpoint stalls a commit.
func (s *Store) checkpoint(ctx context.Context) {
	if fi, err := os.Stat(s.walPath); err == nil && fi.Size() < checkpointAt {
		return
	}
	var busy, frames, copied int
	if err := s.r.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil && ctx.Err() == nil {
		// The writers' own checkpoint takes over; their errors are the
		// ones that count.
		s.log.Debug("checkpoint the store's WAL", "err", err)
	}
}
