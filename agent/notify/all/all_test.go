package all

import (
	"bufio"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/agent/notify"
)

// TestShippedKinds pins the kinds vigil shipped before the registry, in
// the order receivers list their integrations (and the pager its
// targets); a kind added later takes its own place without editing this.
func TestShippedKinds(t *testing.T) {
	want := []string{"webhook", "dingtalk", "wecom", "feishu", "pagerduty", "slack", "email"}
	var got []string
	for _, k := range notify.Kinds() {
		if slices.Contains(want, k) {
			got = append(got, k)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("shipped kinds = %q, want %q", got, want)
	}
}

// TestRegistrations checks what the loader and the pager rely on from
// every registered kind.
func TestRegistrations(t *testing.T) {
	orders := map[int]string{}
	for _, in := range notify.Integrations() {
		t.Run(in.Kind, func(t *testing.T) {
			if in.Key != in.Kind+"_configs" {
				t.Errorf("key %q, want %q (Alertmanager's naming, which the docs follow)", in.Key, in.Kind+"_configs")
			}
			if other, dup := orders[in.Order]; dup {
				t.Errorf("Order %d is also %q's: give each kind its own place", in.Order, other)
			}
			orders[in.Order] = in.Kind
			a, b := in.NewConfig(), in.NewConfig()
			if a == b {
				t.Error("NewConfig returns the same pointer twice: entries would share one config")
			}
			if got, ok := notify.LookupKey(in.Key); !ok || got.Kind != in.Kind {
				t.Errorf("LookupKey(%q) = %q, %v", in.Key, got.Kind, ok)
			}
			// A config of another kind is an error, not a panic.
			if n, err := in.New(foreign{}, http.DefaultClient); err == nil || n != nil {
				t.Errorf("New(foreign config) = %v, %v; want an error", n, err)
			}
		})
	}
}

type foreign struct{}

func (foreign) Validate() error { return nil }

// rowRE matches a row of the README's integrations table:
// | `webhook_configs` | what it sends | `url` or `url_secret`, ... |
var rowRE = regexp.MustCompile("^\\| `([a-z0-9_]+_configs)` \\|[^|]*\\|(.*)\\|\\s*$")

// TestREADMETable: the README's table of integrations has a row for
// every registered kind and none for a kind that does not exist, and each
// row's settings name every key of the kind's config, so the docs follow
// the registry.
func TestREADMETable(t *testing.T) {
	f, err := os.Open("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]string{} // key → settings column
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	paging := false // the table is in "## Paging"; other sections have *_configs keys too
	for sc.Scan() {
		if h, ok := strings.CutPrefix(sc.Text(), "## "); ok {
			paging = h == "Paging"
		}
		if m := rowRE.FindStringSubmatch(sc.Text()); paging && m != nil {
			if _, dup := rows[m[1]]; dup {
				t.Errorf("README: two rows for %s", m[1])
			}
			rows[m[1]] = m[2]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, in := range notify.Integrations() {
		settings, ok := rows[in.Key]
		if !ok {
			t.Errorf("README: the integrations table has no row for `%s`", in.Key)
			continue
		}
		delete(rows, in.Key)
		for _, key := range yamlKeys(reflect.TypeOf(in.NewConfig()).Elem()) {
			if !strings.Contains(settings, "`"+key+"`") {
				t.Errorf("README: the `%s` row does not name its setting `%s`", in.Key, key)
			}
		}
	}
	stale := make([]string, 0, len(rows))
	for key := range rows {
		stale = append(stale, key)
	}
	sort.Strings(stale)
	for _, key := range stale {
		t.Errorf("README: the integrations table lists `%s`, which no integration registers", key)
	}
}

// yamlKeys lists a config struct's top-level YAML keys.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
		case strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct:
			keys = append(keys, yamlKeys(f.Type)...)
		case name == "":
			keys = append(keys, strings.ToLower(f.Name))
		default:
			keys = append(keys, name)
		}
	}
	return keys
}
