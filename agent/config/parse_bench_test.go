package config

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParse10k decodes and validates 10,000 http checks, the config
// part of a reload at scale (issue 21).
func BenchmarkParse10k(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("global: {interval: 1m, timeout: 5s, startup_splay: 1m}\nchecks:\n")
	for i := range 10000 {
		fmt.Fprintf(&sb, "  - {name: t%05d, type: http, http: {url: \"http://127.0.0.1:8080/t/%d\", traceroute_on_failure: false}}\n", i, i)
	}
	data := []byte(sb.String())
	for b.Loop() {
		if _, err := Parse("vigil.yml", data); err != nil {
			b.Fatal(err)
		}
	}
}
