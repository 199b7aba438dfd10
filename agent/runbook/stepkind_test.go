package runbook

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// parseStep parses a manual runbook with the one step given as YAML.
func parseStep(t *testing.T, step string) *Step {
	t.Helper()
	rb, err := Parse("rb.yml", []byte("name: a\ntrigger: {manual: true}\nsteps:\n  - "+step+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return &rb.Steps[0]
}

func TestRegisterStepRefusesBadKinds(t *testing.T) {
	noop := func(context.Context, *struct{ X int }, RenderedStep, Env) (Outcome, error) { return Outcome{}, nil }
	valid := func(*struct{ X int }) error { return nil }
	for _, tc := range []struct {
		name string
		kind StepKind[struct{ X int }]
	}{
		{"no key", StepKind[struct{ X int }]{Validate: valid, Execute: noop}},
		{"no execute", StepKind[struct{ X int }]{Key: "x", Validate: valid}},
		{"a step's own key", StepKind[struct{ X int }]{Key: "timeout", Validate: valid, Execute: noop}},
		{"taken key", StepKind[struct{ X int }]{Key: "http", Validate: valid, Execute: noop}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("registered")
				}
			}()
			RegisterStep(tc.kind)
		})
	}
	// Nothing above was registered; the shipped kinds are, in order.
	kinds := StepKinds()
	if !slices.IsSorted(kinds) {
		t.Errorf("kinds not sorted: %q", kinds)
	}
	for _, k := range []string{"approve", "check", "exec", "http", "notify", "wait"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("kind %s not registered: %q", k, kinds)
		}
	}
	if slices.Contains(kinds, "x") {
		t.Errorf("a refused kind was registered: %q", kinds)
	}
}

// TestStepKindsRoundTrip: whatever a registered kind's config, a step of
// it decodes from under its key, and shows under the same key in JSON.
func TestStepKindsRoundTrip(t *testing.T) {
	for _, key := range StepKinds() {
		t.Run(key, func(t *testing.T) {
			k := lookupKind(key)
			cfg := k.new()
			// The config, defaults included, decodes back from under its key.
			y, err := yaml.Marshal(map[string]any{"name": "n", key: cfg})
			if err != nil {
				t.Fatal(err)
			}
			var s Step
			if err := yaml.Unmarshal(y, &s); err != nil || s.Kind() != key || s.kinds != 1 {
				t.Errorf("decoded %s as kind %q (%d): %v", y, s.Kind(), s.kinds, err)
			}
			s = Step{Name: "n", Config: cfg}
			js, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(js, &m); err != nil || m[key] == nil || len(m) != 5 {
				t.Errorf("JSON %s: %v", js, err)
			}
		})
	}
}

// TestStepJSONEscaping: a step's JSON is escaped as its encoder is set to,
// as the struct it replaced was.
func TestStepJSONEscaping(t *testing.T) {
	s := Step{Name: "<n>", Config: &NotifyStep{Receiver: "r", Message: "a <b> & c"}}
	for _, escape := range []bool{true, false} {
		var got, want bytes.Buffer
		enc := json.NewEncoder(&got)
		enc.SetEscapeHTML(escape)
		if err := enc.Encode([]Step{s}); err != nil {
			t.Fatal(err)
		}
		enc = json.NewEncoder(&want)
		enc.SetEscapeHTML(escape)
		enc.Encode([]struct {
			Name      string      `json:"name"`
			Notify    *NotifyStep `json:"notify"`
			Timeout   string      `json:"timeout"`
			Retry     Retry       `json:"retry"`
			OnFailure OnFailure   `json:"on_failure"`
		}{{Name: s.Name, Notify: s.Config.(*NotifyStep), Timeout: "0s"}})
		if got.String() != want.String() {
			t.Errorf("escape %v:\n got %s\nwant %s", escape, got.String(), want.String())
		}
	}
}

func TestCheckRefs(t *testing.T) {
	rb, err := Load("testdata/invoice-failover.yml")
	if err != nil {
		t.Fatal(err)
	}
	all := Known{Checks: map[string]bool{"invoice_sync_standby": true, "invoice_qr": true}, Receivers: map[string]bool{"oncall": true}}
	if err := rb.CheckRefs(all); err != nil {
		t.Errorf("all known: %v", err)
	}
	for _, tc := range []struct {
		known Known
		want  string
	}{
		{Known{Receivers: all.Receivers}, `testdata/invoice-failover.yml: step "standby passes" runs check "invoice_sync_standby", which is not configured`},
		{Known{Checks: map[string]bool{"invoice_sync_standby": true}, Receivers: all.Receivers}, `testdata/invoice-failover.yml: step "invoice_qr passes 3 times" runs check "invoice_qr", which is not configured`},
		{Known{Checks: all.Checks}, `testdata/invoice-failover.yml: step "tell on-call" notifies receiver "oncall", which is not configured`},
	} {
		if err := rb.CheckRefs(tc.known); err == nil || err.Error() != tc.want {
			t.Errorf("got %v\nwant %s", err, tc.want)
		}
	}
}

// TestREADMEStepKinds keeps the README's list of step kinds in step with
// the registry.
func TestREADMEStepKinds(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	para := regexp.MustCompile(`(?s)\nStep kinds: (.*?)\n\n`).FindSubmatch(readme)
	if para == nil {
		t.Fatal(`README.md has no "Step kinds:" paragraph`)
	}
	for _, k := range StepKinds() {
		if !bytes.Contains(para[1], []byte("`"+k+"`")) {
			t.Errorf("README.md's step kinds do not name `%s`", k)
		}
	}
}

func TestKindTimeouts(t *testing.T) {
	step := 30 * time.Second
	for _, tc := range []struct {
		yaml string
		want time.Duration
	}{
		{"http: {url: http://x}", step},
		{"exec: {argv: [x]}", step},
		{"check: {name: c}", step},
		{"check: {name: c, successes: 3, within: 5m, interval: 10s}", 5*time.Minute + 10*time.Second},
		{"check: {name: c, within: 1s, interval: 1s}", step},
		{"wait: 10s", step},
		{"wait: 2m", 2*time.Minute + time.Second},
		{"notify: {receiver: r, message: m}", step},
		{"approve: {}", DefaultApprovalTimeout},
		{"approve: {timeout: 1s}", time.Second},
	} {
		s := parseStep(t, tc.yaml)
		if got := kindOf(s.Config).timeout(s.Config, time.Duration(s.Timeout)); got != tc.want {
			t.Errorf("%s: timeout %s, want %s", tc.yaml, got, tc.want)
		}
	}
}
