package ui

import (
	"io/fs"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/runbook"
)

// TestMessages: every message key a template names exists in both
// languages, and every translation is filled in.
func TestMessages(t *testing.T) {
	literal := regexp.MustCompile(`\bt [$.\w]*\.Lang "([^"]+)"`)
	dynamic := regexp.MustCompile(`printf "([a-z_.]+)%s([a-z_.]*)"`)
	used := map[string]bool{}
	prefixes := map[string]bool{}
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := templateFS.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range literal.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
		for _, m := range dynamic.FindAllStringSubmatch(string(b), -1) {
			prefixes[m[1]+"|"+m[2]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(used) < 50 || len(prefixes) < 5 {
		t.Fatalf("found %d keys and %d dynamic prefixes: the pattern no longer matches the templates", len(used), len(prefixes))
	}
	for k := range used {
		if _, ok := messages[k]; !ok {
			t.Errorf("templates use %q, which has no message", k)
		}
	}
	for p := range prefixes {
		pre, suf, _ := strings.Cut(p, "|")
		n := 0
		for k := range messages {
			if strings.HasPrefix(k, pre) && strings.HasSuffix(k, suf) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no messages for %s%%s%s", pre, suf)
		}
	}
	for k, m := range messages {
		if m.en == "" || m.zh == "" {
			t.Errorf("%q is missing a translation: %+v", k, m)
		}
	}
}

func TestLang(t *testing.T) {
	tests := []struct {
		name, query, cookie, accept, want string
	}{
		{"default", "", "", "", "en"},
		{"browser asks for Chinese", "", "", "zh-CN,zh;q=0.9,en;q=0.8", "zh"},
		{"Taiwan Chinese is still Chinese", "", "", "zh-TW", "zh"},
		{"English first", "", "", "en-US,zh;q=0.5", "en"},
		{"French falls back to English", "", "", "fr-FR", "en"},
		{"query wins", "lang=en", "", "zh-CN", "en"},
		{"cookie wins over the browser", "", "zh", "en-US", "zh"},
		{"bad query ignored", "lang=xx", "", "zh-CN", "zh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/?"+tt.query, nil)
			if tt.accept != "" {
				req.Header.Set("Accept-Language", tt.accept)
			}
			if tt.cookie != "" {
				req.Header.Set("Cookie", langCookie+"="+tt.cookie)
			}
			rec := httptest.NewRecorder()
			if got := Lang(rec, req); got != tt.want {
				t.Errorf("Lang = %s, want %s", got, tt.want)
			}
			if tt.query == "lang=en" && !strings.Contains(rec.Header().Get("Set-Cookie"), langCookie+"=en") {
				t.Errorf("choice not remembered: %q", rec.Header().Get("Set-Cookie"))
			}
		})
	}
}

func TestSparkline(t *testing.T) {
	svg := string(Sparkline([]Point{{0.1, true}, {0.3, false}, {0.2, true}}, 100, 20))
	if !strings.HasPrefix(svg, "<svg") || strings.Count(svg, "<circle") != 1 || !strings.Contains(svg, "polyline") {
		t.Errorf("sparkline: %s", svg)
	}
	if Sparkline(nil, 100, 20) != "" {
		t.Error("empty history should draw nothing")
	}
}

func TestTemplatesParse(t *testing.T) {
	p := New()
	p.once.Do(p.parse)
	if p.err != nil {
		t.Fatal(p.err)
	}
	for _, n := range pageNames {
		if p.pages[n] == nil {
			t.Errorf("page %s not parsed", n)
		}
	}
}

// TestRunbooksPageShowsStepKinds: the runbooks page names each step with
// its kind from the step-kind registry.
func TestRunbooksPageShowsStepKinds(t *testing.T) {
	rb, err := runbook.Parse("rb.yml", []byte(`name: failover
description: switch issuing to the standby
trigger: {alert: InvoiceQRFailing}
steps:
  - name: switch
    http: {method: POST, url: "http://127.0.0.1:1/switch"}
  - name: settle
    wait: 1s
`))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	page := Page{Lang: "en", Title: "Runbooks", Now: time.Now(), Data: runbooksData{Runbooks: []*runbook.Runbook{rb}}}
	if err := New().Render(rec, 200, "runbooks", page); err != nil {
		t.Fatal(err)
	}
	if body := rec.Body.String(); !strings.Contains(body, "http switch → wait settle") {
		t.Errorf("runbooks page lacks the steps line:\n%s", body)
	}
}

// TestRunbooksPageNamesReceivers: a notify step names the receiver it
// pages, in the page's language.
func TestRunbooksPageNamesReceivers(t *testing.T) {
	rb, err := runbook.Parse("rb.yml", []byte(`name: failover
trigger: {alert: InvoiceQRFailing}
steps:
  - name: settle
    wait: 1s
  - name: tell on-call
    notify: {receiver: oncall, message: "failed over"}
`))
	if err != nil {
		t.Fatal(err)
	}
	for lang, want := range map[string]string{"en": "wait settle → notify tell on-call (receiver: oncall)", "zh": "notify tell on-call (接收方: oncall)"} {
		rec := httptest.NewRecorder()
		page := Page{Lang: lang, Now: time.Now(), Data: runbooksData{Runbooks: []*runbook.Runbook{rb}}}
		if err := New().Render(rec, 200, "runbooks", page); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s: runbooks page lacks %q", lang, want)
		}
	}
}
