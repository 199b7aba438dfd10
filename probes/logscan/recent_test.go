package logscan

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedactLine(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain line", `level=error code=E42 msg="sync failed"`, `level=error code=E42 msg="sync failed"`},
		{"key=value password", `connect failed password=hunter22 host=db`, `connect failed password=<secret> host=db`},
		{"quoted JSON field", `{"user":"ops","api_key":"sk_live_abcdef123456","n":1}`, `{"user":"ops","api_key":"<secret>","n":1}`},
		{"header", `Authorization: Bearer eyJhbGciOi.eyJzdWIiOi.sig_nat-ure`, `Authorization: <secret>`},
		{"bearer alone", `retrying with bearer abcdef0123456789`, `retrying with bearer <secret>`},
		{"URL password", `dial postgres://invoice:s3cr3t!x@db:5432/inv failed`, `dial postgres://invoice:<secret>@db:5432/inv failed`},
		{"query token", `GET /api/v1/invoices?limit=10&access_token=abc123def456&x=1`, `GET /api/v1/invoices?limit=10&access_token=<secret>&x=1`},
		{"X-Auth-Token header", `X-Auth-Token: 8c2f1e0a9b`, `X-Auth-Token: <secret>`},
		{"secret with spaces around", `client_secret = 'q1w2e3r4'`, `client_secret = '<secret>'`},
		{"JWT anywhere", `token was eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc-def_ghi`, `token was <secret>`},
		{"JWT cut short", `jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIx`, `jwt <secret>`},
		{"AWS key id", `using AKIAIOSFODNN7EXAMPLE for s3`, `using <secret> for s3`},
		{"session cookie", `Cookie: sessionid=abc; theme=dark`, `Cookie: <secret>; theme=dark`},
		{"invalid UTF-8", "bad \xff byte", "bad \uFFFD byte"},
		{"long line cut", strings.Repeat("x", 300), strings.Repeat("x", 200) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redactLine(tt.in); got != tt.want {
				t.Errorf("redactLine(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRecentLines(t *testing.T) {
	var r recentLines
	for i := 1; i <= 8; i++ {
		r.add([]byte(fmt.Sprintf("line %d", i)), uint64(i))
	}
	if got := strings.Join(r.between(0, 8), ","); got != "line 4,line 5,line 6,line 7,line 8" {
		t.Errorf("last five: %s", got)
	}
	if got := strings.Join(r.between(6, 7), ","); got != "line 7" {
		t.Errorf("between 6 and 7: %s", got)
	}
	r.add([]byte(strings.Repeat("y", 2*maxRecentBytes)), 9)
	if got := r.between(8, 9); len(got) != 1 || len(got[0]) != maxRecentBytes {
		t.Errorf("a long line is not cut to %d bytes: %d", maxRecentBytes, len(got[0]))
	}
	r.reset()
	if got := r.between(0, 100); len(got) != 0 {
		t.Errorf("after reset: %v", got)
	}
}

// TestProbePatternReports: each evaluation reports per pattern the lines
// matched since the previous one, with the last of them redacted.
func TestProbePatternReports(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	l := newCheck(t, dir, nil)
	stop := start(l)
	defer stop()
	waitReady(t, l)
	var b strings.Builder
	for i := range 7 {
		fmt.Fprintf(&b, "level=error code=E%d password=pw%d\n", i, i)
	}
	appendFile(t, log, b.String()+"seq=1 msg=hello\n")
	waitFor(t, l, 1, "vigil_log_matches_total", "pattern=seq")
	res := l.Probe(context.Background(), quiet)
	reps, ok := res.Diagnostics["patterns"].([]PatternReport)
	if !ok || len(reps) != 2 {
		t.Fatalf("diagnostics %#v", res.Diagnostics)
	}
	seq, errs := reps[0], reps[1]
	if seq.Pattern != "seq" || seq.Matches != 1 || len(seq.Lines) != 1 || seq.Lines[0] != "seq=1 msg=hello" || seq.LastMatch.IsZero() {
		t.Errorf("seq: %+v", seq)
	}
	if errs.Pattern != "err" || errs.Matches != 7 || errs.Total != 7 || len(errs.Lines) != maxRecent {
		t.Fatalf("err: %+v", errs)
	}
	if errs.Lines[0] != "level=error code=E2 password=<secret>" || errs.Lines[4] != "level=error code=E6 password=<secret>" {
		t.Errorf("err lines: %q", errs.Lines)
	}
	if s := errs.String(); s != `err: 7 new, 7 total; last: "level=error code=E6 password=<secret>"` {
		t.Errorf("one-line form: %s", s)
	}
	// Nothing new: counts stay, no lines.
	res = l.Probe(context.Background(), quiet)
	reps = res.Diagnostics["patterns"].([]PatternReport)
	if reps[1].Matches != 0 || reps[1].Total != 7 || len(reps[1].Lines) != 0 {
		t.Errorf("quiet interval: %+v", reps[1])
	}
}
