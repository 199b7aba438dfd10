package notify

import (
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"sync"
)

// Config is one entry of a receiver's `<kind>_configs` list. NewConfig
// returns it with defaults applied; Validate reports every problem, as
// confkit.FieldErrors joined with errors.Join, so the config loader can
// point at the line.
type Config interface {
	Validate() error
}

// Integration is a receiver integration kind, registered by its package
// from init(). The config loader decodes a receiver's Key list through
// NewConfig and Validate, and the pager builds notifiers with New: no
// other list of kinds exists.
type Integration struct {
	// Kind names the integration in targets ("oncall/webhook[0]") and in
	// the integration label of the vigil_notify_* series.
	Kind string
	// Key is the receiver's YAML key of the kind's list ("webhook_configs").
	Key string
	// Order places the kind among a receiver's integrations (and their
	// delivery targets); kinds sort by Order, then Kind. Registration order
	// cannot serve: Go initialises packages by import path, so it would
	// change whenever a kind is added. The shipped kinds use 10, 20, …
	// in the order they were added to vigil (webhook, dingtalk, wecom,
	// feishu, pagerduty, slack, email).
	Order int
	// NewConfig returns a pointer to a config struct with defaults applied.
	NewConfig func() Config
	// New builds a notifier from a validated config returned by NewConfig;
	// client carries the delivery timeout.
	New func(cfg Config, client *http.Client) (Notifier, error)
}

// registry holds the registered kinds; a type of its own so tests can
// exercise registration without touching the process's kinds.
type registry struct {
	mu     sync.RWMutex
	byKind map[string]Integration
	byKey  map[string]string // Key → Kind
}

func newRegistry() *registry {
	return &registry{byKind: map[string]Integration{}, byKey: map[string]string{}}
}

var integrations = newRegistry()

// Register adds an integration kind. It is meant for init(); a duplicate
// or incomplete registration is a programming error and panics.
func Register(in Integration) { integrations.register(in) }

// Lookup returns the integration registered as kind.
func Lookup(kind string) (Integration, bool) { return integrations.lookup(kind) }

// LookupKey returns the integration whose receiver key is key
// ("webhook_configs").
func LookupKey(key string) (Integration, bool) { return integrations.lookupKey(key) }

// Integrations lists the registered kinds by Order, then Kind.
func Integrations() []Integration { return integrations.list() }

// Kinds lists the registered kind names, in the order of Integrations.
func Kinds() []string {
	list := Integrations()
	out := make([]string, len(list))
	for i, in := range list {
		out[i] = in.Kind
	}
	return out
}

// Build makes the notifier of one configured integration.
func Build(kind string, cfg Config, client *http.Client) (Notifier, error) {
	in, ok := Lookup(kind)
	if !ok {
		return nil, fmt.Errorf("unknown integration kind %q", kind)
	}
	return in.New(cfg, client)
}

func (r *registry) register(in Integration) {
	if in.Kind == "" || in.Key == "" || in.NewConfig == nil || in.New == nil {
		panic(fmt.Sprintf("notify: incomplete integration registration %q", in.Kind))
	}
	// The loader decodes into what NewConfig points at.
	if c := in.NewConfig(); c == nil || reflect.TypeOf(c).Kind() != reflect.Pointer || reflect.ValueOf(c).IsNil() ||
		reflect.TypeOf(c).Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("notify: integration %q: NewConfig must return a non-nil pointer to a struct, got %T", in.Kind, c))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.byKind[in.Kind]; dup {
		panic(fmt.Sprintf("notify: integration kind %q registered twice", in.Kind))
	}
	if other, dup := r.byKey[in.Key]; dup {
		panic(fmt.Sprintf("notify: integration key %q registered by %q and %q", in.Key, other, in.Kind))
	}
	r.byKind[in.Kind] = in
	r.byKey[in.Key] = in.Kind
}

func (r *registry) lookup(kind string) (Integration, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	in, ok := r.byKind[kind]
	return in, ok
}

func (r *registry) lookupKey(key string) (Integration, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	kind, ok := r.byKey[key]
	if !ok {
		return Integration{}, false
	}
	return r.byKind[kind], true
}

func (r *registry) list() []Integration {
	r.mu.RLock()
	out := make([]Integration, 0, len(r.byKind))
	for _, in := range r.byKind {
		out = append(out, in)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Order != out[j].Order {
			return out[i].Order < out[j].Order
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

// Adapt turns a kind's typed constructor into Integration.New: the config
// must be the *C its NewConfig returns, and a failed build returns a nil
// Notifier, never a nil *N inside one.
func Adapt[C any, P interface {
	*C
	Config
}, N Notifier](build func(C, *http.Client) (N, error)) func(Config, *http.Client) (Notifier, error) {
	return func(c Config, client *http.Client) (Notifier, error) {
		cfg, ok := c.(P)
		if !ok {
			return nil, fmt.Errorf("config of type %T, want %T", c, P(nil))
		}
		n, err := build(*cfg, client)
		if err != nil {
			return nil, err
		}
		return n, nil
	}
}
