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
// saved counters stopped.
type checkpoint struct {
	Version     int            `json:"version"`
	SavedAt     time.Time      `json:"saved_at"`
	Files       []fileState    `json:"files"`
	Lines       uint64         `json:"lines"`
	Bytes       uint64         `json:"bytes"`
	Rotations   uint64         `json:"rotations"`
	Truncations uint64         `json:"truncations"`
	LongLines   uint64         `json:"long_lines"`
	Patterns    []patternState `json:"patterns"`
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

type patternState struct {
	Name      string        `json:"name"`
	Labels    []string      `json:"labels,omitempty"`
	Total     uint64        `json:"total"`
	LastMatch float64       `json:"last_match,omitempty"`
	Series    []seriesState `json:"series"`
}

type seriesState struct {
	Values []string `json:"values,omitempty"`
	Count  uint64   `json:"count"`
}

// snapshot captures files and counters consistently (the owner goroutine
// calls it between reads).
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
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	cp.Lines, cp.Bytes, cp.Rotations, cp.Truncations, cp.LongLines = c.lines, c.bytes, c.rotations, c.truncations, c.longLines
	for _, pc := range c.patterns {
		ps := patternState{Name: pc.name, Labels: pc.labelNames, Total: pc.total, LastMatch: pc.lastMatch}
		for _, s := range pc.series {
			ps.Series = append(ps.Series, seriesState{Values: s.labels, Count: s.n})
		}
		cp.Patterns = append(cp.Patterns, ps)
	}
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
// down (rename rotation), in which case it is drained first.
func (t *tailer) restore(cp checkpoint) {
	c := t.c
	c.mu.Lock()
	c.lines, c.bytes, c.rotations, c.truncations, c.longLines = cp.Lines, cp.Bytes, cp.Rotations, cp.Truncations, cp.LongLines
	for _, ps := range cp.Patterns {
		for i := range c.patterns {
			pc := &c.patterns[i]
			if pc.name != ps.Name || !equalStrings(pc.labelNames, ps.Labels) {
				continue
			}
			pc.total, pc.lastMatch = ps.Total, ps.LastMatch
			pc.series = map[string]*series{}
			for _, s := range ps.Series {
				pc.series[joinKey(s.Values)] = &series{labels: s.Values, n: s.Count}
			}
		}
	}
	c.mu.Unlock()

	now := t.now()
	watched := map[string]bool{}
	for _, p := range t.expand() {
		watched[p] = true
	}
	for _, fsv := range cp.Files {
		t.known[fsv.Path] = true
		tf := &tfile{path: fsv.Path, dev: fsv.Dev, ino: fsv.Ino, fp: fsv.FP, offset: fsv.Offset, skipping: fsv.Skipping, lastGrowth: now}
		if !fsv.Draining {
			if st, err := os.Stat(fsv.Path); err == nil {
				if dev, ino := fileID(st); dev == fsv.Dev && ino == fsv.Ino && t.matchesFP(fsv.Path, fsv.FP) {
					t.files[fsv.Path] = tf
					t.log.Info("log file resumed from the checkpoint", "path", fsv.Path, "offset", fsv.Offset)
					continue
				}
			}
		}
		// Rotated (or already draining): look for it in its directory.
		if p, ok := t.findByID(filepath.Dir(fsv.Path), fsv.Dev, fsv.Ino, fsv.FP); ok {
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
