package checkstate

import (
	"strings"
	"testing"

	"github.com/vigil-project/vigil/probes/network"
)

func TestDiagnosticLines(t *testing.T) {
	got := DiagnosticLines(map[string]any{
		"traceroute": []network.Hop{{TTL: 1, Addr: "10.0.0.1", RTTSeconds: 0.0003}, {TTL: 2}},
		"violations": []string{"disk_low: / 3% free"},
		"note":       "replica lagging",
	})
	want := []string{"note: replica lagging", "traceroute: " + network.Hop{TTL: 1, Addr: "10.0.0.1", RTTSeconds: 0.0003}.String(),
		"traceroute: " + network.Hop{TTL: 2}.String(), "violations: disk_low: / 3% free"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
