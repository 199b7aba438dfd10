package confkit

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// The shapes config sections use, and the encoder's corners: inline
// structs (by value and pointer, nil too), an inline map, omitempty on
// every kind and on a type with IsZero, MarshalYAML (Secret, one that
// returns nil), MarshalText, durations, untagged fields,
// float32, big integers.
type plainInner struct {
	Host string `yaml:"host"`
	Port int    `yaml:"port,omitempty"`
}

type plainPtrInner struct {
	Path string `yaml:"path,omitempty"`
}

type nilMarshaler struct{}

func (nilMarshaler) MarshalYAML() (any, error) { return nil, nil }

type textKey string

func (k textKey) MarshalText() ([]byte, error) { return []byte("k-" + string(k)), nil }

type plainEdge struct {
	plainInner     `yaml:",inline"`
	*plainPtrInner `yaml:",inline"`
	Extra          map[string]string `yaml:",inline"`

	Name     string            `yaml:"name"`
	Empty    string            `yaml:"empty,omitempty"`
	Password Secret            `yaml:"password,omitempty"`
	Token    Secret            `yaml:"token"`
	Timeout  model.Duration    `yaml:"timeout"`
	Wait     time.Duration     `yaml:"wait"`
	Labels   map[string]string `yaml:"labels"`
	NoLabels map[string]string `yaml:"no_labels,omitempty"`
	Tags     []string          `yaml:"tags"`
	NilTags  []string          `yaml:"nil_tags"`
	Ratio32  float32           `yaml:"ratio32"`
	Ratio    float64           `yaml:"ratio"`
	Whole    float64           `yaml:"whole"`
	Big      uint64            `yaml:"big"`
	Neg      int8              `yaml:"neg"`
	On       bool              `yaml:"on"`
	Off      bool              `yaml:"off,omitempty"`
	Ptr      *plainInner       `yaml:"ptr"`
	NilPtr   *plainInner       `yaml:"nil_ptr"`
	ZeroSub  plainInner        `yaml:"zero_sub,omitempty"`
	Any      any               `yaml:"any"`
	Nil      nilMarshaler      `yaml:"nil"`
	Keys     map[textKey]int   `yaml:"keys"`
	Flow     []int             `yaml:"flow,flow"`
	Untagged string
	Skipped  string `yaml:"-"`
	hidden   string //nolint:unused // unexported: never shown
}

func edge(s string, i int64, f float64, b bool) plainEdge {
	return plainEdge{
		plainInner: plainInner{Host: s, Port: int(i)}, plainPtrInner: &plainPtrInner{Path: s},
		Extra: map[string]string{"x-" + s: s},
		Name:  s, Empty: "", Password: NewSecret(s), Timeout: model.Duration(time.Duration(i)), Wait: time.Duration(i),
		Labels: map[string]string{s: s, "a": "b"}, Tags: []string{s, "", "yes", "012", "1e3", "~"},
		Ratio32: float32(f), Ratio: f, Whole: 3, Big: math.MaxUint64, Neg: -8, On: b,
		Ptr: &plainInner{Host: s}, Any: map[string]any{"n": i, "s": s, "l": []any{f, b}},
		Keys: map[textKey]int{textKey(s): 1}, Flow: []int{1, 2}, Untagged: s, Skipped: s, hidden: s,
	}
}

// samePlain compares Plain(v) with the round trip; mayRefuse lets Plain
// refuse the value (the caller then goes through the text).
func samePlain(t *testing.T, v any, mayRefuse bool) {
	t.Helper()
	got, err := Plain(v)
	if mayRefuse && errors.Is(err, errNotPlain) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	want, err := PlainViaText(v)
	if mayRefuse && err != nil {
		return // the text cannot hold it either ("<<" as a key is a merge)
	}
	if err != nil {
		t.Fatal(err)
	}
	gj, err1 := json.Marshal(got)
	wj, err2 := json.Marshal(want)
	if err1 != nil || err2 != nil {
		t.Fatalf("%v %v", err1, err2)
	}
	if string(gj) != string(wj) {
		t.Errorf("Plain\n%s\nYAML round trip\n%s", gj, wj)
	}
}

func TestPlainMatchesYAML(t *testing.T) {
	for _, tt := range []struct {
		name string
		v    any
	}{
		{"every field", edge("db.internal", 5432, 0.1, true)},
		{"zero values", plainEdge{}},
		{"pointer", ptr(edge("a", -1, 1e21, false))},
		{"secret shown as <secret>", struct {
			S Secret `yaml:"s"`
		}{NewSecret("hunter2")}},
		{"nil", nil},
	} {
		t.Run(tt.name, func(t *testing.T) { samePlain(t, tt.v, false) })
	}
	if got, _ := Plain(struct {
		S Secret `yaml:"s"`
	}{NewSecret("hunter2")}); got.(map[string]any)["s"] == "hunter2" {
		t.Fatal("a secret's value shown")
	}
}

// TestPlainNotPlain: what Plain cannot follow is an error, not a guess.
func TestPlainNotPlain(t *testing.T) {
	for name, v := range map[string]any{
		"yaml.Node":     yaml.Node{Kind: yaml.ScalarNode, Value: "x"},
		"int map key":   map[int]string{1: "a"},
		"invalid UTF-8": "\xff",
		"NaN":           math.NaN(),
		"channel":       make(chan int),
		"duplicate inline": struct {
			plainInner `yaml:",inline"`
			Host       string `yaml:"host"`
		}{},
	} {
		if _, err := Plain(v); !errors.Is(err, errNotPlain) {
			t.Errorf("%s: %v, want errNotPlain", name, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func FuzzPlainMatchesYAML(f *testing.F) {
	f.Add("db.internal", int64(5432), 0.1, true)
	f.Add("", int64(0), 0.0, false)
	f.Add("yes", int64(-1), 1e300, true)
	f.Add("<<", int64(math.MaxInt64), math.Copysign(0, -1), false)
	f.Fuzz(func(t *testing.T, s string, i int64, x float64, b bool) {
		for _, v := range []string{s, "x-" + s, "k-" + s} {
			if back, err := PlainViaText(v); err != nil || back != v {
				// The oracle loses it: yaml.v3 reads "\n" back as "".
				t.Skipf("YAML text does not hold %q", v)
			}
		}
		samePlain(t, edge(s, i, x, b), true)
	})
}
