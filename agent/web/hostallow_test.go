package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/agent/metrics"
)

func TestHostAllowList(t *testing.T) {
	hn, _ := os.Hostname()
	h := newHostAllowList([]string{":9877", "vigil.internal:9878", "vsock://:9879"}, []string{"Ops.Example.COM.", "*.agents.example.net"})
	tests := []struct {
		host string
		want bool
	}{
		{"", true}, // HTTP/1.0 without Host: not a browser
		{"localhost", true},
		{"localhost:9877", true},
		{"LOCALHOST.:9877", true},
		{"app.localhost:9877", true},
		{"127.0.0.1:9877", true},
		{"127.1.2.3", true},
		{"[::1]:9877", true},
		{"[::1]", true},
		{"10.1.2.3:9877", true}, // IP literals cannot be rebound
		{"[fe80::1]:9877", true},
		{"vigil.internal:9877", true},
		{hn + ":9877", true},
		{"ops.example.com:443", true},
		{"a.agents.example.net", true},
		{"b.a.agents.example.net:9877", true},
		{"agents.example.net", false}, // the wildcard needs a label in front
		{"evilagents.example.net", false},
		{"rebind.example:9877", false},
		{"localhost.evil.example", false},
		{"2130706433:9877", false}, // 127.0.0.1 as a number is a name to us
		{"[::1", false},
		{":9877", false},
	}
	for _, tt := range tests {
		if got := h.allowed(tt.host); got != tt.want {
			t.Errorf("allowed(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

// TestHostRefusal: a DNS-rebinding request that would run a drill (the
// exec-capable route) is refused before any handler, counted by reason and
// logged; health and readiness still answer whatever the Host.
func TestHostRefusal(t *testing.T) {
	var logs strings.Builder
	exp := metrics.New()
	// No subsystems: a refused request must not reach any of them.
	srv, err := New(Options{Metrics: exp, Logger: newTextLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	for _, path := range []string{"/api/v1/drills/run", "/api/v1/silences", "/api/v1/runbooks/pause"} {
		req := httptest.NewRequest("POST", path, strings.NewReader(`{"drill":"x"}`))
		req.Host = "rebind.example:9877"
		req.RemoteAddr = "127.0.0.1:50000"
		req.Header.Set("Origin", "http://rebind.example:9877")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusMisdirectedRequest || !strings.Contains(rec.Body.String(), "--web.allowed-host=rebind.example") {
			t.Errorf("POST %s: %d %s", path, rec.Code, rec.Body.String())
		}
	}
	for _, path := range []string{"/-/healthy", "/-/ready"} {
		req := httptest.NewRequest("GET", path, nil)
		req.Host = "rebind.example:9877"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusMisdirectedRequest {
			t.Errorf("GET %s refused for its Host", path)
		}
	}
	var m strings.Builder
	exp.WritePrometheus(&m)
	if !strings.Contains(m.String(), `vigil_http_requests_refused_total{reason="host"} 3`) ||
		!strings.Contains(m.String(), `vigil_http_requests_refused_total{reason="cross_origin"} 0`) {
		t.Errorf("refusal counters:\n%s", grepLines(m.String(), "refused"))
	}
	if !strings.Contains(logs.String(), "host=rebind.example:9877") {
		t.Errorf("no log line for the refusal: %s", logs.String())
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}
