package agent

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/internal/redact"
	"github.com/vigil-project/vigil/probes"
)

// TestRedactResult: a secret value of the config never leaves a check's
// result, in its message or anywhere in its diagnostics (logscan's last
// matching lines, a traceroute, an error body), and results without one
// are left as they are.
func TestRedactResult(t *testing.T) {
	t.Parallel()
	sec := redact.New([]string{"hunter2-db-pass", "https://oapi.example/robot/send?access_token=tok-5f1e9a"})
	type lines struct {
		Last []string `json:"last"`
	}
	tests := []struct {
		name string
		in   probes.Result
		leak []string
		same bool
	}{
		{"message", probes.Result{Message: "login as app:hunter2-db-pass failed"}, []string{"hunter2-db-pass"}, false},
		{"nested diagnostics", probes.Result{Diagnostics: map[string]any{
			"patterns": map[string]any{"sync_failed": lines{Last: []string{`{"msg":"post","token":"tok-5f1e9a"}`}}},
			"hops":     []map[string]any{{"addr": "10.0.0.1"}},
		}}, []string{"tok-5f1e9a"}, false},
		{"no secret", probes.Result{Message: "timeout", Diagnostics: map[string]any{"hops": []string{"10.0.0.1"}}}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := redactResult(sec, tt.in)
			b, _ := json.Marshal(out)
			for _, s := range tt.leak {
				if strings.Contains(string(b), s) {
					t.Errorf("secret %q left in %s", s, b)
				}
			}
			if len(tt.leak) > 0 && !strings.Contains(string(b), `\u003csecret\u003e`) { // redact.Mask, JSON-escaped
				t.Errorf("no mask in %s", b)
			}
			if tt.same {
				in, _ := json.Marshal(tt.in)
				if string(in) != string(b) {
					t.Errorf("changed without a secret: %s -> %s", in, b)
				}
			}
		})
	}
}
