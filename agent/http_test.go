package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/internal/testenv"
	_ "github.com/vigil-project/vigil/probes/all"
)

// newTestAgent returns an agent whose scheduler runs (so reloads and
// run-now work) but whose HTTP server does not: tests call Handler directly.
func newTestAgent(t *testing.T) *Agent { return newTestAgentWith(t, nil) }

// newTestAgentWith is newTestAgent with its options adjusted by edit.
func newTestAgentWith(t *testing.T, edit func(*Options)) *Agent {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vigil.yml")
	os.WriteFile(cfg, []byte("checks:\n  - name: host\n    type: host\n    host: {cpu_sample: 10ms, cpu_max: 1, memory_max: 1, disk_free_min: 0}\n"), 0o644)
	// example.com is httptest.NewRequest's default Host.
	opts := Options{ConfigFile: cfg, StoragePath: filepath.Join(dir, "vigil.db"), AllowedHosts: []string{"example.com"}}
	if edit != nil {
		edit(&opts)
	}
	a, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.sched.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; a.closeStore() })
	if err := a.sched.Update(ctx, a.jobs); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestHTTP(t *testing.T) {
	a := newTestAgent(t)
	h := a.web.Handler()
	tests := []struct {
		name, method, path, remote string
		status                     int
		body                       string
	}{
		{"status page", "GET", "/", "", 200, `href="/metrics"`},
		{"unknown path", "GET", "/nope", "", 404, ""},
		{"healthy", "GET", "/-/healthy", "", 200, "Healthy"},
		{"not ready before Run", "GET", "/-/ready", "", 503, "Not ready"},
		{"metrics", "GET", "/metrics", "", 200, "vigil_build_info{"},
		{"checks", "GET", "/api/v1/checks", "", 200, `"name": "host"`},
		{"check", "GET", "/api/v1/checks/host", "", 200, `"cpu_sample": "10ms"`},
		{"unknown check", "GET", "/api/v1/checks/nope", "", 404, `no check named \"nope\"`},
		{"bad limit", "GET", "/api/v1/checks/host?limit=0", "", 400, "limit must be"},
		{"reload from another host", "POST", "/-/reload", "192.0.2.7:4000", 403, "only accepted from localhost"},
		{"run from another host", "POST", "/api/v1/checks/host/run", "[2001:db8::1]:4000", 403, "only accepted from localhost"},
		{"reload from loopback", "POST", "/-/reload", "127.0.0.1:4000", 200, "reloaded"},
		{"reload from ipv6 loopback", "POST", "/-/reload", "[::1]:4000", 200, "reloaded"},
		{"GET on reload", "GET", "/-/reload", "127.0.0.1:4000", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.remote != "" {
				req.RemoteAddr = tt.remote
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("%s %s: %d %q, want %d containing %q", tt.method, tt.path, rec.Code, rec.Body.String(), tt.status, tt.body)
			}
		})
	}
}

func TestRunNowThroughAPI(t *testing.T) {
	a := newTestAgent(t)
	ctx := context.Background()
	req := httptest.NewRequest("POST", "/api/v1/checks/host/run", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	rec := httptest.NewRecorder()
	a.web.Handler().ServeHTTP(rec, req)
	var res client.ResultView
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if !res.Success || res.Phases["cpu"] <= 0 || len(res.Values) == 0 {
		t.Errorf("result: %+v", res)
	}
	if err := a.store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if h, err := a.store.History(ctx, "host", 5); err != nil || len(h) != 1 {
		t.Errorf("history after run-now: %d rows, %v", len(h), err)
	}
}

// TestSilenceMatchingNothingWarns: a silence whose matchers match no alert
// rule or series is kept (it may be meant for later) but answered with a
// warning naming the closest values; one that matches a series is not.
func TestSilenceMatchingNothingWarns(t *testing.T) {
	a := newTestAgent(t)
	ctx := context.Background()
	if _, err := a.sched.RunNow(ctx, "host"); err != nil {
		t.Fatal(err)
	}
	a.rules.EvalNow(ctx, time.Now()) // the check's series into the sample store
	post := func(matcher string) client.AddedSilence {
		t.Helper()
		req := httptest.NewRequest("POST", "/api/v1/silences", strings.NewReader(
			`{"matchers": [`+strconv.Quote(matcher)+`], "duration": "1h", "createdBy": "ops", "comment": "maintenance"}`))
		req.RemoteAddr = "127.0.0.1:5555"
		rec := httptest.NewRecorder()
		a.web.Handler().ServeHTTP(rec, req)
		var s client.AddedSilence
		if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		return s
	}
	if s := post(`check="host"`); s.Warning != "" || s.ID == "" {
		t.Errorf("silence of a known check: %+v", s)
	}
	if s := post(`check="hots"`); s.ID == "" || !strings.Contains(s.Warning, `check is never "hots"; closest values: ["host"`) {
		t.Errorf("silence of a typo: %+v", s)
	}
}

// TestREADMEListsEveryRoute: the README's HTTP endpoints table names
// every API and health route of the route table (the status page's own
// routes are summed up in its first row), so the docs follow the routes.
func TestREADMEListsEveryRoute(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), "## HTTP endpoints")
	j := strings.Index(string(b), "## Status page and security")
	if i < 0 || j < i {
		t.Fatal("README has no HTTP endpoints section")
	}
	table := string(b[i:j])
	a := newTestAgent(t)
	for _, r := range a.web.Routes() {
		_, path, _ := strings.Cut(r.Pattern, " ")
		if !strings.HasPrefix(path, "/api/") && !strings.HasPrefix(path, "/-/") && path != "/metrics" {
			continue // status page and its forms
		}
		// The table abbreviates a route's siblings ("…/approve, .../reject"):
		// its last segment must appear after the nearest named parent.
		last := path[strings.LastIndex(path, "/")+1:]
		if !strings.Contains(table, path) && !strings.Contains(table, "/"+last) {
			t.Errorf("README's HTTP endpoints table lacks %s", r.Pattern)
		}
	}
}

// TestChecksAPIPages: /api/v1/checks answers pages in name order with the
// total and the next offset, filtered by step, type, status, label and
// name; bad parameters are 400s.
func TestChecksAPIPages(t *testing.T) {
	a := newTestAgent(t)
	var cfg strings.Builder
	cfg.WriteString("checks:\n")
	for i := range 5 {
		team := map[bool]string{true: "db", false: "ops"}[i%2 == 0]
		fmt.Fprintf(&cfg, "  - {name: host%d, type: host, labels: {team: %s}, host: {cpu_sample: 10ms, cpu_max: 1, memory_max: 1, disk_free_min: %d}}\n", i, team, map[bool]int{true: 1, false: 0}[i == 3])
	}
	cfg.WriteString("  - {name: upstream, type: tcp, tcp: {address: '127.0.0.1:1'}}\n")
	writeFile(t, a.state.Config().File, cfg.String())
	ctx := context.Background()
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"host0", "host1", "host3"} {
		if _, err := a.sched.RunNow(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		query string
		code  int
		names string
		total int
		next  int // -1: none
	}{
		{"", 200, "host0 host1 host2 host3 host4 upstream", 6, -1},
		{"?limit=2", 200, "host0 host1", 6, 2},
		{"?limit=2&offset=4", 200, "host4 upstream", 6, -1},
		{"?offset=9", 200, "", 6, -1},
		{"?type=tcp", 200, "upstream", 1, -1},
		{"?step=network", 200, "upstream", 1, -1},
		{"?status=failing", 200, "host3", 1, -1},
		{"?status=passing", 200, "host0 host1", 2, -1},
		{"?status=unknown&label=team=db", 200, "host2 host4", 2, -1},
		{"?name=st1", 200, "host1", 1, -1},
		{"?limit=0", 400, "", 0, -1},
		{"?status=sick", 400, "", 0, -1},
		{"?label=team", 400, "", 0, -1},
	} {
		rec := httptest.NewRecorder()
		a.web.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/checks"+tc.query+map[bool]string{true: "&", false: "?"}[strings.Contains(tc.query, "?")]+"history=1", nil))
		if rec.Code != tc.code {
			t.Errorf("%s: %d %s", tc.query, rec.Code, rec.Body)
			continue
		}
		if tc.code != 200 {
			continue
		}
		var got struct {
			Checks []struct {
				Name    string
				History []any
			}
			Total int
			Next  *int `json:"next_offset"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range got.Checks {
			names = append(names, c.Name)
			if len(c.History) > 1 {
				t.Errorf("%s: %s has %d runs of history, asked for 1", tc.query, c.Name, len(c.History))
			}
		}
		next := -1
		if got.Next != nil {
			next = *got.Next
		}
		if strings.Join(names, " ") != tc.names || got.Total != tc.total || next != tc.next {
			t.Errorf("%s: %v total %d next %d; want %s total %d next %d", tc.query, names, got.Total, next, tc.names, tc.total, tc.next)
		}
	}
}

// TestMaxRequests: with --web.max-requests 1, a page asked for while a
// run-now holds the slot is answered 503 with Retry-After, counted as
// refused (busy); /metrics and /-/healthy still answer; the slot frees.
func TestMaxRequests(t *testing.T) {
	a := newTestAgentWith(t, func(o *Options) { o.MaxRequests = 1 })
	writeFile(t, a.state.Config().File, "checks:\n  - {name: slow, type: host, host: {cpu_sample: 1500ms, cpu_max: 1, memory_max: 1, disk_free_min: 0}}\n")
	if err := a.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := a.web.Handler()
	serve := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, path, nil)
		req.RemoteAddr = "127.0.0.1:5555"
		h.ServeHTTP(rec, req)
		return rec
	}
	done := make(chan int)
	// The run-now retries until it gets the slot (the polls below take it
	// for a moment too), then holds it for the check's 1.5s.
	go func() {
		for {
			if code := serve("POST", "/api/v1/checks/slow/run").Code; code != 503 {
				done <- code
				return
			}
		}
	}()
	testenv.Eventually(t, 5*time.Second, "the run-now holds the only slot", func() bool {
		return serve("GET", "/api/v1/checks").Code == 503
	})
	if rec := serve("GET", "/"); rec.Code != 503 || rec.Header().Get("Retry-After") != "1" || !strings.Contains(rec.Body.String(), "--web.max-requests") {
		t.Errorf("page while busy: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	for _, p := range []string{"/metrics", "/-/healthy"} {
		if rec := serve("GET", p); rec.Code != 200 {
			t.Errorf("%s while busy: %d", p, rec.Code)
		}
	}
	if code := <-done; code != 200 {
		t.Fatalf("run-now: %d", code)
	}
	if rec := serve("GET", "/api/v1/checks"); rec.Code != 200 {
		t.Errorf("after the run: %d", rec.Code)
	}
	if body := serve("GET", "/metrics").Body.String(); !regexp.MustCompile(`vigil_http_requests_refused_total\{reason="busy"\} [1-9]`).MatchString(body) {
		t.Error("busy refusals not counted")
	}
}
