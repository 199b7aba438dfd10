// Package promhelp completes the metadata VictoriaMetrics/metrics writes.
// Its sets write "# HELP name" with no text, which promtool check metrics
// reports and Grafana shows as a blank tooltip, and type a summary's family
// "unsupported", which Prometheus's text parser refuses: one summary made
// the whole scrape fail. The owner of a set keeps its HELP texts beside
// the metrics it creates and writes through here.
package promhelp

import (
	"bytes"
	"io"
	"strings"

	vm "github.com/VictoriaMetrics/metrics"
)

// escape is the text format's escaping of HELP text.
var escape = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

// Write writes set in the Prometheus text format with every empty HELP
// line of a family named in help completed. Families missing from help
// keep their empty line (a test of the owner should catch them).
func Write(w io.Writer, set *vm.Set, help map[string]string) {
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	w.Write(Fill(buf.Bytes(), help))
}

// Fill returns text with each empty "# HELP name" line completed from help
// and each "# TYPE name unsupported" (a VictoriaMetrics summary: quantile
// series, _sum and _count) typed summary.
func Fill(text []byte, help map[string]string) []byte {
	out := make([]byte, 0, len(text)+256)
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i+1], text[i+1:]
		} else {
			text = nil
		}
		name, ok := bytes.CutPrefix(bytes.TrimRight(line, "\n"), []byte("# HELP "))
		if ok && bytes.IndexByte(name, ' ') < 0 {
			if h := help[string(name)]; h != "" {
				out = append(out, "# HELP "...)
				out = append(out, name...)
				out = append(out, ' ')
				out = append(out, escape.Replace(h)...)
				out = append(out, '\n')
				continue
			}
		}
		if name, ok := bytes.CutPrefix(line, []byte("# TYPE ")); ok {
			if n, ok := bytes.CutSuffix(bytes.TrimRight(name, "\n"), []byte(" unsupported")); ok {
				out = append(out, "# TYPE "...)
				out = append(out, n...)
				out = append(out, " summary\n"...)
				continue
			}
		}
		out = append(out, line...)
	}
	return out
}
