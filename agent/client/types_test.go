package client

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/probes"
)

// TestResultViewPhases: phases keep the order they ran in (phases), and
// the by-name object older clients read stays (phases_seconds).
func TestResultViewPhases(t *testing.T) {
	r := probes.Result{Success: true, Phases: []probes.Phase{
		{Name: "resolve", Duration: 2 * time.Millisecond},
		{Name: "connect", Duration: 5 * time.Millisecond},
		{Name: "tls", Duration: 9 * time.Millisecond},
		{Name: "processing", Duration: 40 * time.Millisecond},
		{Name: "transfer", Duration: time.Millisecond},
	}}
	v := NewResultView(r)
	var names []string
	for _, p := range v.PhaseList {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "resolve,connect,tls,processing,transfer" {
		t.Errorf("phase order %s", got)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"phases_seconds":{"connect":0.005,`, `"phases":[{"name":"resolve","seconds":0.002},{"name":"connect","seconds":0.005}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	if b, _ := json.Marshal(NewResultView(probes.Result{})); strings.Contains(string(b), "phases") {
		t.Errorf("a result without phases shows them: %s", b)
	}
}
