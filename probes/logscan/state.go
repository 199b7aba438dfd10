package logscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// stateVersion changes when the checkpoint format does.
const stateVersion = 1

// checkpoint is the state file: offsets and counters written together, so
// after any restart (kill -9 included) counting resumes exactly where the
// saved counters stopped. The counters are embedded so that the file keeps
// its flat format.
type checkpoint struct {
	Version int         `json:"version"`
	SavedAt time.Time   `json:"saved_at"`
	Files   []fileState `json:"files"`
	counts
}

type fileState struct {
	Path     string `json:"path"`
	Dev      uint64 `json:"dev"`
	Ino      uint64 `json:"ino"`
	FP       []byte `json:"fingerprint"`
	Offset   int64  `json:"offset"`
	Skipping bool   `json:"skipping,omitempty"`
	Draining bool   `json:"draining,omitempty"`
}

// snapshot captures files and counters consistently. Only the owner
// goroutine calls it, between reads: every offset then covers exactly the
// lines the counters include.
func (t *tailer) snapshot() checkpoint {
	cp := checkpoint{Version: stateVersion, SavedAt: t.now()}
	add := func(tf *tfile) {
		cp.Files = append(cp.Files, fileState{Path: tf.path, Dev: tf.dev, Ino: tf.ino, FP: tf.fp,
			Offset: tf.offset, Skipping: tf.skipping, Draining: tf.draining})
	}
	for _, tf := range t.files {
		add(tf)
	}
	for _, tf := range t.drain {
		add(tf)
	}
	cp.counts = t.c.counts()
	return cp
}

// save writes the checkpoint atomically: a temporary file, fsync, rename,
// fsync of the directory.
func saveCheckpoint(path string, cp checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func loadCheckpoint(path string) (checkpoint, bool, error) {
	var cp checkpoint
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cp, false, nil
	}
	if err != nil {
		return cp, false, fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, &cp); err != nil {
		return cp, false, fmt.Errorf("checkpoint %s is damaged: %w", path, err)
	}
	if cp.Version != stateVersion {
		return cp, false, fmt.Errorf("checkpoint %s has version %d, this agent reads %d", path, cp.Version, stateVersion)
	}
	return cp, true, nil
}

// restore resumes from a checkpoint: counters of patterns that still
// exist, and every file found again by device, inode and fingerprint —
// at its old path, or renamed within its directory while the agent was
// down (rename rotation), in which case it is drained first. A file still
// at its path with other content was truncated after the checkpoint
// (copytruncate): it is read from its start, and the lines of the old
// content past the checkpoint are read from the copy when it can be found.
func (t *tailer) restore(cp checkpoint) {
	c := t.c
	c.load(cp.counts)
	// Whatever restore finds differs from the file it came from until it
	// is saved again.
	t.dirty = true

	now := t.now()
	watched := map[string]bool{}
	for _, p := range t.expand() {
		watched[p] = true
	}
	var truncated []*tfile
	// Entries are located first: when two find the same
	// file (a checkpoint written amid rapid renames, an inode reused after
	// rename-and-delete with the same first bytes), only the one furthest
	// into it is read, so no line is counted twice.
	// A file still at its checkpointed path is read there (from the
	// furthest offset); other entries finding it are dropped.
	furthest, inPlace := map[string]int{}, map[string]bool{}
	for i, fsv := range cp.Files {
		if p, ok := t.locate(fsv); ok {
			if j, seen := furthest[p]; !seen || fsv.Offset > cp.Files[j].Offset {
				furthest[p] = i
			}
			if p == fsv.Path && !fsv.Draining {
				inPlace[p] = true
			}
		}
	}
	for i, fsv := range cp.Files {
		t.known[fsv.Path] = true
		tf := &tfile{path: fsv.Path, dev: fsv.Dev, ino: fsv.Ino, fp: fsv.FP, offset: fsv.Offset, skipping: fsv.Skipping, lastGrowth: now}
		if !fsv.Draining {
			if st, err := os.Stat(fsv.Path); err == nil {
				if dev, ino := fileID(st); dev == fsv.Dev && ino == fsv.Ino {
					if t.matchesFP(fsv.Path, fsv.FP) {
						if j := furthest[fsv.Path]; j != i {
							t.log.Warn("two checkpoint entries find one file; reading it once, from the furthest offset",
								"path", fsv.Path, "offset", fsv.Offset, "furthest", cp.Files[j].Offset)
							tf.offset, tf.skipping = cp.Files[j].Offset, cp.Files[j].Skipping
						}
						t.files[fsv.Path] = tf
						t.log.Info("log file resumed from the checkpoint", "path", fsv.Path, "offset", fsv.Offset)
						continue
					}
					// The copy is looked for once every checkpointed
					// file is tracked, so that none is read twice.
					truncated = append(truncated, tf)
					continue
				}
			}
		}
		// Rotated (or already draining): look for it in its directory.
		if p, ok := t.findByID(filepath.Dir(fsv.Path), fsv.Dev, fsv.Ino, fsv.FP); ok {
			if j := furthest[p]; j != i || inPlace[p] {
				t.log.Warn("two checkpoint entries find one file; reading it once, from the furthest offset",
					"path", p, "was", fsv.Path, "offset", fsv.Offset, "furthest", cp.Files[j].Offset)
				continue
			}
			if watched[p] && t.files[p] == nil {
				// Renamed to a name the paths match: read on there.
				tf.path = p
				t.files[p] = tf
				t.log.Info("log file renamed while stopped; resuming", "path", p, "was", fsv.Path, "offset", fsv.Offset)
				continue
			}
			tf.path, tf.draining = p, true
			t.drain = append(t.drain, tf)
			t.log.Info("log file rotated while stopped; reading it to its end", "path", p, "was", fsv.Path, "offset", fsv.Offset)
			if !fsv.Draining {
				c.mu.Lock()
				c.rotations++
				c.mu.Unlock()
			}
			continue
		}
		t.log.Warn("log file from the checkpoint is gone; lines written to it after the last checkpoint were not counted",
			"path", fsv.Path, "offset", fsv.Offset)
	}
	for _, tf := range truncated {
		t.log.Info("log file truncated since the checkpoint; reading it from the start", "path", tf.path, "offset", tf.offset)
		t.truncated(tf, now)
		// Saved with the first bytes of the new content, so that a further
		// truncation before the next checkpoint is noticed too.
		tf.fp = readFingerprint(tf.path, fingerprintLen)
		t.files[tf.path] = tf
	}
}

func (t *tailer) matchesFP(path string, fp []byte) bool {
	if len(fp) == 0 {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, len(fp))
	n, _ := f.ReadAt(head, 0)
	return n == len(fp) && bytes.Equal(head, fp)
}

// locate is the file restore will read for a checkpoint entry: its own
// path when the file is still there with the same first bytes, or — for
// a file no longer at its path, or already draining — the file of its
// device and inode in its directory when its first bytes still match.
// False for a file truncated in place or gone.
func (t *tailer) locate(fsv fileState) (string, bool) {
	if !fsv.Draining {
		if st, err := os.Stat(fsv.Path); err == nil {
			if dev, ino := fileID(st); dev == fsv.Dev && ino == fsv.Ino {
				return fsv.Path, t.matchesFP(fsv.Path, fsv.FP)
			}
		}
	}
	return t.findByID(filepath.Dir(fsv.Path), fsv.Dev, fsv.Ino, fsv.FP)
}

func (t *tailer) findByID(dir string, dev, ino uint64, fp []byte) (string, bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", false
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if d, i := fileID(info); d == dev && i == ino {
			p := filepath.Join(dir, e.Name())
			return p, t.matchesFP(p, fp)
		}
	}
	return "", false
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
