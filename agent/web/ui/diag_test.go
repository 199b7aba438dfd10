package ui

import (
	"strings"
	"testing"
	"time"
)

func TestDiagHTML(t *testing.T) {
	type hop struct {
		TTL  int     `json:"ttl"`
		Addr string  `json:"addr,omitempty"`
		RTT  float64 `json:"rtt_seconds,omitempty"`
	}
	p := Page{Lang: "en", Zone: time.UTC, Now: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		name, key string
		v         any
		want      string
	}{
		{"plain string", "qr_decoded", "01,32,<x>", "01,32,&lt;x&gt;"},
		{"number with the key's unit", "lag_seconds", 0.25, `<span title="0.25">250.0 ms</span>`},
		{"bool", "reached", true, "yes"},
		{"null", "x", nil, "—"},
		{"RFC 3339 time in the zone", "at", "2025-03-01T08:00:00+08:00", "2025-03-01 00:00:00"},
		{"list of plain values", "violations", []string{"disk_low: /", "inodes_low"}, `<ul class="vals"><li>disk_low: /</li><li>inodes_low</li></ul>`},
		{"empty list", "x", []string{}, "—"},
		{"map as key/value table", "unreadable", map[string]string{"/b.log": "denied", "/a.log": "gone"},
			`<div class="scroll"><table class="kv diag"><tr><th>/a.log</th><td>gone</td></tr><tr><th>/b.log</th><td>denied</td></tr></table></div>`},
		{"list of objects as columns in field order", "hops", []hop{{TTL: 1, Addr: "10.0.0.1", RTT: 0.001}, {TTL: 2}},
			`<div class="scroll"><table class="diag cols"><thead><tr><th>ttl</th><th>addr</th><th>rtt_seconds</th></tr></thead><tbody>` +
				`<tr><td><span title="1">1</span></td><td>10.0.0.1</td><td><span title="0.001">1.0 ms</span></td></tr>` +
				`<tr><td><span title="2">2</span></td><td>—</td><td>—</td></tr></tbody></table></div>`},
		{"deeper than two tables is compact JSON", "a", map[string]any{"b": map[string]any{"c": map[string]any{"d": []int{1, 2}}}},
			`<th>c</th><td><code class="json">{&#34;d&#34;:[1,2]}</code></td>`},
		{"mixed list is compact JSON", "m", []any{1, "two", map[string]int{"three": 3}},
			`<code class="json">[1,&#34;two&#34;,{&#34;three&#34;:3}]</code>`},
		{"script is text", "x", map[string]string{"<script>": "</td>"}, "<th>&lt;script&gt;</th><td>&lt;/td&gt;</td>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(DiagHTML(p, tt.key, tt.v))
			if !strings.Contains(got, tt.want) {
				t.Errorf("got\n%s\nwant it to contain\n%s", got, tt.want)
			}
		})
	}
	if !IsScalar("x") || !IsScalar(3.5) || IsScalar([]int{1}) || IsScalar(map[string]int{}) {
		t.Error("IsScalar")
	}
}
