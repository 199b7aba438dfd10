package logscan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// fingerprintLen is how much of a file's start identifies its content,
// beside device and inode (which the filesystem reuses).
const fingerprintLen = 256

// tfile is one file being read.
type tfile struct {
	path     string // where it was found (a rotated file keeps its old name here)
	dev, ino uint64
	fp       []byte // the first bytes of the file, up to fingerprintLen
	offset   int64  // everything before is counted
	skipping bool   // inside an over-long line: discard up to its newline
	f        *os.File
	// draining: rotated away or deleted; read until it has not grown for
	// RotateGrace, then closed.
	draining   bool
	lastGrowth time.Time
	size       int64
	// rescued: a copy of truncated content not read yet. Its lines exist
	// nowhere else (the next rotation may rewrite or compress it), so they
	// are saved as soon as they are counted.
	rescued bool
}

// tailer finds and reads the files of one check. Only the goroutine that
// owns it calls its methods, except snapshot reads under the counters' lock.
type tailer struct {
	cfg   *Config
	log   *slog.Logger
	m     *matcher
	c     *counters
	buf   []byte
	ends  []int
	vals  []string
	files map[string]*tfile // by path
	drain []*tfile
	paths []string
	// known are paths from the checkpoint: a new file there replaced one
	// that rotated while the agent was down, so it is read from the start.
	known     map[string]bool
	firstScan bool
	lastGlob  time.Time
	// errs are the current per-path problems (permission denied), shown by Probe.
	errs map[string]string
	now  func() time.Time
	// dirty: offsets, files or counters changed since the last checkpoint.
	dirty bool
	// progress, when set, is called between reads with the state
	// consistent (every offset covers exactly what the counters include),
	// so that the owner can checkpoint during a long read. urgent means a
	// truncation was just handled: the lines read from the old content
	// exist nowhere else in the file, so they must be saved now.
	progress func(urgent bool)
}

func newTailer(cfg *Config, m *matcher, c *counters, log *slog.Logger) *tailer {
	// 64 KiB reads are already few syscalls per megabyte; the buffer lives as
	// long as the check, so it stays small unless lines may be longer.
	size := max(64<<10, cfg.MaxLineBytes+1)
	return &tailer{cfg: cfg, log: log, m: m, c: c, buf: make([]byte, size), files: map[string]*tfile{},
		known: map[string]bool{}, firstScan: true, errs: map[string]string{}, now: time.Now}
}

// expand resolves the globs, minus the excluded paths.
func (t *tailer) expand() []string {
	var out []string
	for _, g := range t.cfg.Paths {
		matches, _ := filepath.Glob(g)
		for _, p := range matches {
			if !t.excluded(p) {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (t *tailer) excluded(p string) bool {
	for _, x := range t.cfg.Exclude {
		target := p
		if !strings.Contains(x, "/") {
			target = filepath.Base(p)
		}
		if ok, _ := filepath.Match(x, target); ok {
			return true
		}
	}
	return false
}

// poll does one pass: discover, then read.
func (t *tailer) poll() {
	t.discover()
	t.readAll()
}

// discover re-globs when due and notices new, replaced and vanished files,
// without reading. It reports whether the set of files changed, so the
// caller can checkpoint before reading: a file being read is then always
// in the saved state, and a restart after it rotated away finds it again.
func (t *tailer) discover() (changed bool) {
	now := t.now()
	if t.paths == nil || now.Sub(t.lastGlob) >= time.Duration(t.cfg.GlobInterval) {
		t.paths = t.expand()
		t.lastGlob = now
	}
	seen := make(map[string]bool, len(t.paths))
	for _, p := range t.paths {
		st, err := os.Stat(p)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				t.setErr(p, err)
			}
			continue
		}
		if !st.Mode().IsRegular() {
			continue
		}
		seen[p] = true
		dev, ino := fileID(st)
		tf := t.files[p]
		if tf != nil && (tf.dev != dev || tf.ino != ino) {
			// Another file now has this name: the old one was renamed or
			// deleted. It is read to its end, then dropped.
			t.retire(tf, now)
			tf = nil
			changed = true
		}
		if tf == nil {
			if tf = t.adopt(p, dev, ino); tf == nil {
				tf = &tfile{path: p, dev: dev, ino: ino, lastGrowth: now, fp: readFingerprint(p, st.Size())}
				if t.firstScan && !t.known[p] && t.cfg.StartAt == "end" {
					tf.offset = st.Size()
					tf.skipping = !endsWithNewline(p, st.Size())
				}
			}
			t.files[p] = tf
			changed = true
		}
	}
	for p, tf := range t.files {
		if !seen[p] {
			// Gone (renamed away without a successor yet, deleted, or
			// excluded now): drain what the open handle still has.
			t.retire(tf, now)
			changed = true
		}
	}
	t.firstScan = false
	if changed {
		t.dirty = true
	}
	return changed
}

// readAll reads every file to its end and drops drained ones whose grace
// has passed.
func (t *tailer) readAll() {
	now := t.now()
	for _, tf := range t.files {
		t.read(tf, now)
	}
	// By index: a truncation found while reading adds the copy of the old
	// content here, to be read in this pass. The list is only compacted
	// after reading, so a checkpoint taken during a read sees it whole.
	for i := 0; i < len(t.drain); i++ {
		tf := t.drain[i]
		t.read(tf, now)
		if tf.rescued {
			tf.rescued = false
			if t.progress != nil {
				t.progress(true)
			}
		}
	}
	kept := t.drain[:0]
	for _, tf := range t.drain {
		if now.Sub(tf.lastGrowth) >= time.Duration(t.cfg.RotateGrace) {
			t.finish(tf)
			t.dirty = true
			continue
		}
		kept = append(kept, tf)
	}
	clear(t.drain[len(kept):])
	t.drain = kept
}

// adopt returns a tracked file with this identity that now shows up at p
// (renamed from another watched path, or a rotated file that the paths
// also match): the same file, read on from its offset rather than again.
func (t *tailer) adopt(p string, dev, ino uint64) *tfile {
	same := func(tf *tfile) bool { return tf.dev == dev && tf.ino == ino && t.matchesFP(p, tf.fp) }
	for i, tf := range t.drain {
		if same(tf) {
			t.drain = append(t.drain[:i], t.drain[i+1:]...)
			tf.path, tf.draining = p, false
			return tf
		}
	}
	for q, tf := range t.files {
		if q != p && same(tf) {
			delete(t.files, q)
			tf.path = p
			return tf
		}
	}
	return nil
}

func readFingerprint(path string, size int64) []byte {
	if size <= 0 {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fp := make([]byte, min(size, fingerprintLen))
	n, _ := f.ReadAt(fp, 0)
	return fp[:n]
}

func (t *tailer) retire(tf *tfile, now time.Time) {
	t.log.Info("log file rotated away; reading it to its end", "path", tf.path, "offset", tf.offset)
	delete(t.files, tf.path)
	tf.draining = true
	tf.lastGrowth = now
	t.drain = append(t.drain, tf)
	t.c.mu.Lock()
	t.c.rotations++
	t.c.mu.Unlock()
}

// finish counts a final line left without its newline and closes the file.
func (t *tailer) finish(tf *tfile) {
	if tf.f != nil {
		if n, _ := tf.f.ReadAt(t.buf[:min(len(t.buf), t.cfg.MaxLineBytes)], tf.offset); n > 0 && !tf.skipping {
			t.c.mu.Lock()
			t.process(t.buf[:n], true)
			t.c.bytes += uint64(n)
			t.c.mu.Unlock()
			tf.offset += int64(n)
		}
		tf.f.Close()
		tf.f = nil
	}
}

func (t *tailer) setErr(p string, err error) {
	msg := err.Error()
	if t.errs[p] != msg {
		t.log.Warn("cannot read log file", "path", p, "err", err)
	}
	t.errs[p] = msg
}

// read reads tf from its offset to the end, counting complete lines.
func (t *tailer) read(tf *tfile, now time.Time) {
	if tf.f == nil {
		f, err := os.Open(tf.path)
		if err != nil {
			t.setErr(tf.path, err)
			return
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			t.setErr(tf.path, err)
			return
		}
		if dev, ino := fileID(st); dev != tf.dev || ino != tf.ino {
			// Replaced between stat and open: read the one we opened as new.
			tf.dev, tf.ino, tf.fp, tf.offset, tf.skipping = dev, ino, nil, 0, false
		}
		tf.f = f
		delete(t.errs, tf.path)
	}
	st, err := tf.f.Stat()
	if err != nil {
		t.setErr(tf.path, err)
		return
	}
	size := st.Size()
	truncated := size < tf.offset || !t.sameStart(tf)
	if truncated && tf.draining {
		// A rotated file, or a copy being drained, rewritten in place
		// (cp onto the previous copy): what it holds now is not this
		// log's unread lines, and reading it again would count lines
		// twice. It is dropped at the end of the pass.
		t.log.Info("rotated log file rewritten while being read; leaving it", "path", tf.path, "offset", tf.offset)
		tf.f.Close()
		tf.f, tf.lastGrowth = nil, time.Time{}
		return
	}
	if truncated {
		// Truncated in place (copytruncate), possibly already regrown.
		// What was not read of the old content is gone from this file.
		t.log.Info("log file truncated; reading it from the start", "path", tf.path, "offset", tf.offset, "size", size)
		t.truncated(tf, now)
	}
	if size > tf.size {
		tf.lastGrowth = now
	}
	tf.size = size
	firstBytes := false
	if len(tf.fp) < fingerprintLen && size > int64(len(tf.fp)) {
		fp := make([]byte, min(size, fingerprintLen))
		if n, _ := tf.f.ReadAt(fp, 0); n == len(fp) {
			firstBytes = len(tf.fp) == 0
			tf.fp = fp
			t.dirty = true
		}
	}
	if (truncated || firstBytes) && t.progress != nil {
		// Saved before the new content is read: the counts of the old
		// content become durable with offset 0 of the new one (and its
		// first bytes, so that a restart notices a further truncation).
		// A file truncated to empty gets its first bytes later: until
		// they are saved, a checkpoint identifies no content, and a
		// restart after a second truncation would take the new content
		// for the one it read and never look for the copy.
		t.progress(true)
	}
	for tf.offset < size {
		n, err := tf.f.ReadAt(t.buf, tf.offset)
		if n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				t.setErr(tf.path, err)
			}
			return
		}
		t.c.mu.Lock()
		used := t.consume(tf, t.buf[:n])
		t.c.bytes += uint64(used)
		t.c.mu.Unlock()
		tf.offset += int64(used)
		if used == 0 {
			return // a partial last line: wait for its newline
		}
		t.dirty = true
		if t.progress != nil {
			t.progress(false)
		}
	}
}

// truncated restarts tf at the start of its new content and counts the
// truncation. The old content past tf's offset is only left in the copy
// copytruncate made, if any: that copy is drained from the same offset.
func (t *tailer) truncated(tf *tfile, now time.Time) {
	if cp := t.findCopy(tf, now); cp != nil {
		t.log.Info("reading the rest of the truncated content from its copy", "path", cp.path, "offset", cp.offset, "of", tf.path)
		t.drain = append(t.drain, cp)
	}
	t.c.mu.Lock()
	t.c.truncations++
	t.c.mu.Unlock()
	tf.offset, tf.fp, tf.skipping = 0, nil, false
	t.dirty = true
}

// findCopy returns, open and ready to drain from tf's offset, the copy of
// tf's content from before a truncation: the one other regular file in its
// directory that starts with tf's fingerprint, is at least as long as the
// offset and has a line end just before it. Nil when the fingerprint is
// unknown, when the copy holds nothing past the offset, or when several
// files qualify: reading the wrong one would count lines that this log
// never had.
func (t *tailer) findCopy(tf *tfile, now time.Time) *tfile {
	if len(tf.fp) == 0 {
		return nil
	}
	dir := filepath.Dir(tf.path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var found []*tfile
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() < tf.offset {
			continue
		}
		dev, ino := fileID(info)
		p := filepath.Join(dir, e.Name())
		if (dev == tf.dev && ino == tf.ino) || t.reading(p, dev, ino) {
			continue
		}
		if c := t.openCopy(p, dev, ino, tf); c != nil {
			found = append(found, c)
		}
	}
	if len(found) == 1 && found[0].size > found[0].offset {
		found[0].lastGrowth = now
		return found[0]
	}
	if len(found) > 1 {
		t.log.Warn("several files could be the copy of the truncated log; lines written before the truncation and not yet read are not counted",
			"path", tf.path, "candidates", len(found))
	}
	for _, c := range found {
		c.f.Close()
	}
	return nil
}

// openCopy opens p if it holds tf's old content up to tf's offset.
func (t *tailer) openCopy(p string, dev, ino uint64, tf *tfile) *tfile {
	// Non-blocking: the entry may have been replaced by a FIFO since it
	// was listed, and opening that must not hang the reader.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil
	}
	if d, i := fileID(st); d != dev || i != ino {
		f.Close()
		return nil
	}
	head := make([]byte, len(tf.fp))
	n, _ := f.ReadAt(head, 0)
	ok := n == len(head) && bytes.Equal(head, tf.fp)
	if ok && tf.offset > 0 && !tf.skipping {
		var b [1]byte
		n, _ := f.ReadAt(b[:], tf.offset-1)
		ok = n == 1 && b[0] == '\n'
	}
	if !ok {
		f.Close()
		return nil
	}
	return &tfile{path: p, dev: dev, ino: ino, fp: tf.fp, offset: tf.offset, skipping: tf.skipping, f: f,
		draining: true, size: st.Size(), rescued: true}
}

// reading reports whether the file at p, with this identity, is already
// being read: a watched file, or a drained one that still holds what it
// held. A previous copy rewritten in place by the next rotation holds new
// content: its old reader drops it (see read) and it can be drained anew.
func (t *tailer) reading(p string, dev, ino uint64) bool {
	for _, tf := range t.files {
		if tf.dev == dev && tf.ino == ino {
			return true
		}
	}
	for _, tf := range t.drain {
		if tf.dev == dev && tf.ino == ino && t.matchesFP(p, tf.fp) {
			return true
		}
	}
	return false
}

// sameStart reports whether the file still begins with its fingerprint.
func (t *tailer) sameStart(tf *tfile) bool {
	if len(tf.fp) == 0 {
		return true
	}
	var head [fingerprintLen]byte
	n, _ := tf.f.ReadAt(head[:len(tf.fp)], 0)
	return n == len(tf.fp) && bytes.Equal(head[:n], tf.fp)
}

// consume counts the complete lines at the start of data and returns how
// many bytes it used. Caller holds the counters' lock.
func (t *tailer) consume(tf *tfile, data []byte) int {
	used := 0
	if tf.skipping {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			return len(data)
		}
		used = nl + 1
		data = data[nl+1:]
		tf.skipping = false
	}
	last := bytes.LastIndexByte(data, '\n')
	if last >= 0 {
		t.process(data[:last+1], false)
		used += last + 1
		data = data[last+1:]
	}
	if len(data) >= t.cfg.MaxLineBytes {
		// No newline within max_line_bytes: count the line truncated and
		// skip the rest of it.
		t.process(data[:t.cfg.MaxLineBytes], true)
		t.c.longLines++
		tf.skipping = true
		used += len(data)
	}
	return used
}

// process counts the lines of data (each ending in a newline, or one final
// line without when final is set) and matches the patterns, in runs of
// lines the matcher takes in one pass.
func (t *tailer) process(data []byte, final bool) {
	t.ends = t.ends[:0]
	runStart, start := 0, 0
	flush := func() {
		if len(t.ends) > 0 {
			t.matchLines(data[runStart:runStart+t.ends[len(t.ends)-1]], t.ends)
			t.ends = t.ends[:0]
		}
	}
	for start < len(data) {
		nl := bytes.IndexByte(data[start:], '\n')
		end := start + nl
		if nl < 0 {
			if !final {
				break
			}
			end = len(data)
		}
		if end-start > t.cfg.MaxLineBytes {
			// An over-long complete line: matched on its first
			// max_line_bytes, alone.
			flush()
			t.c.longLines++
			t.matchLines(data[start:start+t.cfg.MaxLineBytes], []int{t.cfg.MaxLineBytes})
			runStart = end + 1
		} else {
			t.ends = append(t.ends, end-runStart)
		}
		t.c.lines++
		start = end + 1
	}
	flush()
}

func (t *tailer) matchLines(buf []byte, ends []int) {
	now := float64(t.now().UnixNano()) / 1e9
	t.m.scan(buf, ends, func(_ int, line []byte, p int, sub []int) {
		var values []string
		if sub != nil {
			groups := t.m.patterns[p].groups
			t.vals = t.vals[:0]
			for _, g := range groups {
				v := ""
				if s, e := sub[2*g], sub[2*g+1]; s >= 0 {
					v = labelValue(line[s:e])
				}
				t.vals = append(t.vals, v)
			}
			values = slices.Clone(t.vals)
		}
		t.c.match(p, values, line, now)
	})
}

// close releases every handle (the offsets stay for the checkpoint).
func (t *tailer) close() {
	for _, tf := range t.files {
		if tf.f != nil {
			tf.f.Close()
			tf.f = nil
		}
	}
	for _, tf := range t.drain {
		if tf.f != nil {
			tf.f.Close()
			tf.f = nil
		}
	}
}

func endsWithNewline(path string, size int64) bool {
	if size == 0 {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	var b [1]byte
	n, _ := f.ReadAt(b[:], size-1)
	return n == 1 && b[0] == '\n'
}

func fileID(st os.FileInfo) (dev, ino uint64) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Dev), s.Ino
	}
	return 0, 0
}

// describe is a one-line summary of the files for messages.
func (t *tailer) describe() string {
	return fmt.Sprintf("%d files (%d rotated away, still draining)", len(t.files), len(t.drain))
}
