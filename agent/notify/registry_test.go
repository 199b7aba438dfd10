package notify

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
)

type fakeConfig struct{ URL string }

func (*fakeConfig) Validate() error { return nil }

type fakeNotifier struct{ cfg fakeConfig }

func (*fakeNotifier) Notify(context.Context, *Message) error { return nil }

func fakeKind(kind string, order int) Integration {
	return Integration{Kind: kind, Key: kind + "_configs", Order: order,
		NewConfig: func() Config { return &fakeConfig{} },
		New: func(c Config, _ *http.Client) (Notifier, error) {
			return &fakeNotifier{cfg: *c.(*fakeConfig)}, nil
		}}
}

func TestRegistry(t *testing.T) {
	r := newRegistry()
	for _, in := range []Integration{fakeKind("zeta", 10), fakeKind("beta", 30), fakeKind("alpha", 30), fakeKind("mid", 20)} {
		r.register(in)
	}
	var kinds []string
	for _, in := range r.list() {
		kinds = append(kinds, in.Kind)
	}
	if want := []string{"zeta", "mid", "alpha", "beta"}; !slices.Equal(kinds, want) {
		t.Errorf("order = %q, want %q (by Order, then Kind)", kinds, want)
	}
	if in, ok := r.lookupKey("mid_configs"); !ok || in.Kind != "mid" {
		t.Errorf("lookupKey(mid_configs) = %q, %v", in.Kind, ok)
	}
	if _, ok := r.lookupKey("mid"); ok {
		t.Error("a kind name is not a key")
	}
	if _, ok := r.lookup("nope"); ok {
		t.Error("lookup of an unregistered kind succeeded")
	}
}

func TestRegisterPanics(t *testing.T) {
	tests := []struct {
		name string
		in   Integration
		want string
	}{
		{"duplicate kind", func() Integration { in := fakeKind("a", 1); in.Key = "other_configs"; return in }(), `kind "a" registered twice`},
		{"duplicate key", func() Integration { in := fakeKind("b", 1); in.Key = "a_configs"; return in }(), `key "a_configs" registered by "a" and "b"`},
		{"no kind", func() Integration { in := fakeKind("c", 1); in.Kind = ""; return in }(), "incomplete"},
		{"no key", func() Integration { in := fakeKind("c", 1); in.Key = ""; return in }(), "incomplete"},
		{"no config", func() Integration { in := fakeKind("c", 1); in.NewConfig = nil; return in }(), "incomplete"},
		{"no constructor", func() Integration { in := fakeKind("c", 1); in.New = nil; return in }(), "incomplete"},
		{"config not a pointer", func() Integration {
			in := fakeKind("c", 1)
			in.NewConfig = func() Config { return valueConfig{} }
			return in
		}(), "non-nil pointer to a struct"},
		{"nil config", func() Integration {
			in := fakeKind("c", 1)
			in.NewConfig = func() Config { return (*fakeConfig)(nil) }
			return in
		}(), "non-nil pointer to a struct"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRegistry()
			r.register(fakeKind("a", 1))
			defer func() {
				p := recover()
				if p == nil {
					t.Fatal("no panic")
				}
				if msg, _ := p.(string); !strings.Contains(msg, tt.want) {
					t.Errorf("panic %q, want it to contain %q", p, tt.want)
				}
			}()
			r.register(tt.in)
		})
	}
}

type valueConfig struct{}

func (valueConfig) Validate() error { return nil }

func TestBuildUnknownKind(t *testing.T) {
	if _, err := Build("no-such-kind", &fakeConfig{}, http.DefaultClient); err == nil || !strings.Contains(err.Error(), `"no-such-kind"`) {
		t.Errorf("Build of an unknown kind: %v", err)
	}
}

type adaptConfig struct{ fail bool }

func (*adaptConfig) Validate() error { return nil }

type adaptNotifier struct{}

func (*adaptNotifier) Notify(context.Context, *Message) error { return nil }

func TestAdapt(t *testing.T) {
	build := Adapt(func(c adaptConfig, _ *http.Client) (*adaptNotifier, error) {
		if c.fail {
			return nil, errors.New("bad config")
		}
		return &adaptNotifier{}, nil
	})
	if n, err := build(&adaptConfig{}, nil); err != nil || n == nil {
		t.Errorf("build: %v, %v", n, err)
	}
	if n, err := build(&adaptConfig{fail: true}, nil); err == nil || n != nil {
		t.Errorf("failed build returned %#v (want a nil Notifier), %v", n, err)
	}
	if _, err := build(&otherConfig{}, nil); err == nil || !strings.Contains(err.Error(), "want *notify.adaptConfig") {
		t.Errorf("wrong config type: %v", err)
	}
}

type otherConfig struct{}

func (*otherConfig) Validate() error { return nil }
