package runbook

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func TestParseExample(t *testing.T) {
	rb, err := Load("testdata/invoice-failover.yml")
	if err != nil {
		t.Fatal(err)
	}
	if rb.Mode != Enforce || len(rb.Steps) != 3 || rb.Steps[0].Kind() != "http" || rb.Steps[0].Config.(*HTTPStep).FencingHeader != DefaultFencingHeader ||
		rb.Steps[1].Config.(*CheckStep).Successes != 3 || rb.Steps[2].OnFailure != Continue || rb.Rollback[0].OnFailure != Abort || rb.Preconditions[0].Kind() != "check" {
		t.Errorf("parsed %+v", rb)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "name: a\ntrigger: {manual: true}\nsteps: [{wait: 1s}]\nmodee: enforce\n", []string{"field modee not found"}},
		{"everything wrong", `name: Bad Name
mode: yolo
trigger: {}
steps:
  - name: two kinds
    wait: 1s
    exec: {argv: [true]}
  - exec: {argv: []}
    on_failure: explode
  - http: {url: 'http://x/{{ .Labels.a '}
rollback:
  - wait: 1s
    on_failure: rollback
`, []string{
			`:1: name: must be lower-case`,
			`:2: mode: must be enforce, approve or dry_run`,
			`:3: trigger: name an alert, or set manual: true`,
			`:5: steps.0.name: a step has exactly one of`,
			`:8: steps.1.exec.argv: needs the program`,
			`:9: steps.1.on_failure: must be abort, continue or rollback`,
			`:10: steps.2.http.url:`,
			`:13: rollback.0.on_failure: a rollback step cannot roll back`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("rb.yml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
}

// TestInjectionIsInert: hostile label values stay data in every field.
func TestInjectionIsInert(t *testing.T) {
	rb, err := Load("testdata/invoice-failover.yml")
	if err != nil {
		t.Fatal(err)
	}
	hostile := []string{`; rm -rf /`, `$(reboot)`, "`id`", `"}, "active": "primary`, "a\r\nX-Evil: 1", `../../admin?active=primary&x=1#`, "\u0000nul"}
	for _, v := range hostile {
		t.Run(v, func(t *testing.T) {
			d := Data{Labels: map[string]string{"alertname": v, "check": v, "platform": v}, Run: "r1"}
			// JSON body: still valid JSON, and the value is exactly the string.
			step := rb.Steps[0]
			step.Config.(*HTTPStep).URL = "http://gw/admin/{{ .Labels.check }}/switch?from={{ .Labels.check }}"
			step.Config.(*HTTPStep).Headers = map[string]string{"X-Reason": "{{ .Labels.alertname }}"}
			r, err := step.Render(d)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(r.Body), &body); err != nil || len(body) != 2 || body["active"] != "standby" || body["reason"] != v+" on "+v {
				t.Errorf("body %q → %v %v", r.Body, body, err)
			}
			u, err := url.Parse(r.URL)
			if err != nil || u.Host != "gw" || u.Query().Get("from") != v || len(u.Query()) != 1 || u.Fragment != "" || !strings.HasPrefix(u.EscapedPath(), "/admin/") || !strings.HasSuffix(u.Path, "/switch") {
				t.Errorf("url %q: %+v %v", r.URL, u, err)
			}
			if strings.ContainsAny(r.Headers["X-Reason"], "\r\n\x00") {
				t.Errorf("header %q", r.Headers["X-Reason"])
			}
			// exec: one argument, never split or interpreted.
			ex := Step{Name: "x", Config: &ExecStep{Argv: []string{"/bin/echo", "--check={{ .Labels.check }}"}}}
			ex.validate("steps")
			re, err := ex.Render(d)
			if err != nil || len(re.Argv) != 2 || re.Argv[1] != "--check="+v {
				t.Errorf("argv %q %v", re.Argv, err)
			}
		})
	}
	// A label used outside a JSON string cannot add structure: the body no
	// longer parses and the step fails to render instead of running.
	s := Step{Name: "x", Config: &HTTPStep{URL: "http://x", Body: `{"n": {{ .Labels.n }}}`}}
	s.validate("steps")
	if _, err := s.Render(Data{Labels: map[string]string{"n": `1, "active": "primary"`}}); err == nil {
		t.Error("structure injected into a JSON body")
	}
}

func TestAlertEnv(t *testing.T) {
	got := alertEnv(map[string]string{"alertname": "X", "check.name": "a b", "team": "$(id)"})
	want := "VIGIL_ALERT_ALERTNAME=X VIGIL_ALERT_CHECK_NAME=a b VIGIL_ALERT_TEAM=$(id)"
	if strings.Join(got, " ") != want {
		t.Errorf("got %q", got)
	}
}
