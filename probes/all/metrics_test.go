package all_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/probes"
	_ "github.com/vigil-project/vigil/probes/all"
)

// valueName finds the metric names the probes put into results and
// collections: the first argument of AddValue/AddKeyValue and the Name of
// a probes.Value literal.
var valueName = regexp.MustCompile(`(?:Add(?:Key)?Value\(|probes\.Value\{Name: |\{Name: )"(vigil_[a-z0-9_]+)"`)

// TestEveryValueDocumented holds the probes to their families' Metrics:
// a value name a probe exports without a HELP text fails here, before
// promtool check metrics would complain about a live /metrics.
func TestEveryValueDocumented(t *testing.T) {
	seen := map[string]string{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range valueName.FindAllStringSubmatch(string(src), -1) {
			seen[m[1]] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 50 {
		t.Fatalf("found only %d value names in the probes' sources; the pattern no longer matches how they add values", len(seen))
	}
	for name, path := range seen {
		if _, ok := probes.MetricHelp(name); !ok {
			t.Errorf("%s: %s is exported without a HELP text (add it to the family's Metrics)", path, name)
		}
	}
}
