package cli_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashConfig checkpoints on its own only every minute: every checkpoint
// in the test comes from a truncation, a change of files, a scrape or a
// start — the moments the agent must save at.
const crashConfig = `
global:
  startup_splay: 0s
checks:
  - name: app
    type: logscan
    interval: 1h
    logscan:
      paths: [%q]
      start_at: beginning
      poll_interval: 50ms
      checkpoint_interval: 1m
      rotate_grace: 500ms
      patterns:
        - name: seq
          regex: 'seq=\d+'
        - name: seven
          regex: 'seq=\d{8}7 '
`

// counterScraper polls /metrics of whichever agent is current and records
// every logscan counter that is lower than it was at an earlier scrape.
// While the agent is down, scrapes fail: gaps, not resets.
type counterScraper struct {
	mu         sync.Mutex
	url        string
	high       map[string]float64
	ok, failed int
	decreases  []string
	stop, done chan struct{}
}

func newCounterScraper(url string) *counterScraper {
	s := &counterScraper{url: url, high: map[string]float64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *counterScraper) setURL(url string) {
	s.mu.Lock()
	s.url = url
	s.mu.Unlock()
}

func (s *counterScraper) loop() {
	defer close(s.done)
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		url := s.url
		s.mu.Unlock()
		resp, err := client.Get(url + "/metrics")
		if err != nil {
			s.mu.Lock()
			s.failed++
			s.mu.Unlock()
			continue
		}
		series := map[string]float64{}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			name, _, _ := strings.Cut(line, "{")
			if !strings.HasPrefix(line, "vigil_log_") || !strings.HasSuffix(name, "_total") {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err == nil {
				series[line[:i]] = v
			}
		}
		complete := sc.Err() == nil
		resp.Body.Close()
		s.mu.Lock()
		if !complete || resp.StatusCode != 200 {
			s.failed++ // the agent died mid-scrape
		} else {
			s.ok++
			for k, v := range series {
				if old, seen := s.high[k]; seen && v < old && len(s.decreases) < 20 {
					s.decreases = append(s.decreases, fmt.Sprintf("%s: %v after %v", k, v, old))
				}
				s.high[k] = max(s.high[k], v)
			}
		}
		s.mu.Unlock()
	}
}

func (s *counterScraper) close() {
	close(s.stop)
	<-s.done
}

// copyTruncateShifted rotates like logrotate's copytruncate with several
// generations: older copies move up (app.log.1 to app.log.2), then the log
// is copied to app.log.1 and truncated in place.
func copyTruncateShifted(t *testing.T, path string, copies int) {
	for i := copies; i >= 1; i-- {
		if err := os.Rename(path+"."+strconv.Itoa(i), path+"."+strconv.Itoa(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	copyTruncate(t, path)
}

// TestLogscanCopytruncateKill9 appends lines at speed to a log rotated by
// copytruncate while the agent is SIGKILLed at random moments — right after
// a truncation, at any moment, and with the truncation happening while it
// is down — and restarted. A scraper polling /metrics every 20 ms must
// never see a logscan counter go down, and once the writer stops the
// agent must have counted exactly the lines written, each once.
//
// Not parallel, like TestLogscanRotationTorture: its rounds are timed to
// the agent's polling.
func TestLogscanCopytruncateKill9(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("LOGSCAN_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (LOGSCAN_CRASH_SEED reproduces the order of the rounds and their timings)", seed)
	rng := rand.New(rand.NewPCG(seed, 17))
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+rng.IntN(hi-lo+1)) * time.Millisecond }

	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	cfg := writeConfig(t, dir, "vigil.yml", fmt.Sprintf(crashConfig, path))
	db := filepath.Join(dir, "data", "vigil.db")
	a := startAgent(t, "--config.file", cfg, "--storage.path", db)
	w := newWriter(t, path)
	scraper := newCounterScraper(a.url)
	copies, kills := 0, 0
	// The writer is paused while the log is copied and truncated: lines
	// written between the two are lost by copytruncate itself, whatever
	// reads the log.
	rotate := func() {
		w.mu.Lock()
		copyTruncateShifted(t, path, copies)
		w.mu.Unlock()
		copies++
	}
	restart := func() {
		a = startAgent(t, "--config.file", cfg, "--storage.path", db)
		scraper.setURL(a.url)
	}

	const (
		killAfterTruncation = iota
		killAnytime
		truncateOnly
		truncateWhileDown
	)
	rounds := []int{killAfterTruncation, killAfterTruncation, killAfterTruncation, killAnytime, killAnytime,
		truncateOnly, truncateOnly, truncateWhileDown, truncateWhileDown}
	rng.Shuffle(len(rounds), func(i, j int) { rounds[i], rounds[j] = rounds[j], rounds[i] })
	for _, round := range rounds {
		time.Sleep(ms(100, 300)) // the agent reads, the scraper sees it
		switch round {
		case killAfterTruncation:
			rotate()
			time.Sleep(ms(0, 5))
			kill9(t, a)
			kills++
			time.Sleep(ms(20, 200)) // lines go to the new content while the agent is down
			restart()
		case killAnytime:
			kill9(t, a)
			kills++
			time.Sleep(ms(20, 200))
			restart()
		case truncateOnly:
			rotate()
		case truncateWhileDown:
			kill9(t, a)
			kills++
			time.Sleep(ms(0, 100))
			rotate()
			time.Sleep(ms(0, 100))
			restart()
		}
	}
	time.Sleep(ms(50, 150))
	w.close()
	written := w.count()
	lines, matches := settle(t, a, written)
	scraper.close()

	body := a.get(t, "/metrics")
	metric := func(name, labels string) int {
		m := regexp.MustCompile(regexp.QuoteMeta(name+`{check="app",type="logscan"`+labels+`} `) + `(\d+)`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no %s%s in /metrics", name, labels)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	sevens := 0
	for i := 7; i < written; i += 10 {
		sevens++
	}
	t.Logf("written %d lines, counted %d (matches %d); %d copytruncates, %d kills; %d scrapes, %d failed while the agent was down",
		written, lines, matches, copies, kills, scraper.ok, scraper.failed)
	if lines != written || matches != written {
		t.Errorf("counted %d lines and %d matches, %d were written", lines, matches, written)
	}
	if n := metric("vigil_log_matches_total", `,pattern="seven"`); n != sevens {
		t.Errorf("pattern seven matched %d lines, %d were written", n, sevens)
	}
	if n := metric("vigil_log_truncations_total", ""); n != copies {
		t.Errorf("%d truncations counted, the log was truncated %d times", n, copies)
	}
	if len(scraper.decreases) > 0 {
		t.Errorf("counters went down between scrapes:\n%s", strings.Join(scraper.decreases, "\n"))
	}
	if scraper.ok < 30 {
		t.Errorf("only %d scrapes succeeded: the monotonicity check saw too little", scraper.ok)
	}
}
