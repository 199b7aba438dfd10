package rules

import (
	"fmt"
	"io"
	"path/filepath"
	"time"
)

// CheckFiles parses rule files as promtool check rules does, printing a
// line per file; it reports whether all were valid.
func CheckFiles(stdout, stderr io.Writer, files ...string) bool {
	ok := true
	for _, f := range files {
		fmt.Fprintf(stdout, "Checking %s\n", f)
		abs, _ := filepath.Abs(f)
		groups, err := LoadFiles("", []string{abs}, time.Minute, nil, "", nil)
		if err != nil {
			fmt.Fprintf(stderr, "  FAILED:\n%v\n", err)
			ok = false
			continue
		}
		n := 0
		for _, g := range groups {
			n += len(g.Rules)
		}
		fmt.Fprintf(stdout, "  SUCCESS: %d rules found\n", n)
	}
	return ok
}
