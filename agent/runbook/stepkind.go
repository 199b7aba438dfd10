package runbook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/vigil-project/vigil/internal/confkit"
	"gopkg.in/yaml.v3"
)

// StepKind is one kind of runbook step: the key that names it in a step
// (`http:`), its config type C and what to do with one. Each kind lives in
// a step_<key>.go file and registers itself from init() with RegisterStep;
// decoding, validation, rendering, execution and the docs test all go
// through the registry, so adding a kind is that file and its test.
type StepKind[C any] struct {
	// Key is the step's YAML and JSON key for the kind.
	Key string
	// Defaults fills the fields of a config left unset: a new config gets
	// them before it is decoded, and a step built in code before it is
	// validated. Nil when the zero config is the default.
	Defaults func(c *C)
	// Validate reports every problem the file alone shows, as
	// confkit.FieldErrors relative to the kind's key ("url"; "" for the
	// value itself) joined with errors.Join; nil when there is nothing
	// to check.
	Validate func(c *C) error
	// Refs checks what the config names outside the runbook against the
	// agent's config (Known), when runbooks are loaded; nil when it names
	// nothing. The error completes "step NAME ...".
	Refs func(c *C, k Known) error
	// Render fills the rendered step from the config's templates, each
	// escaped for where it lands (see render); nil renders nothing.
	Render func(c *C, d Data, r *RenderedStep) error
	// Timeout returns an attempt's deadline given the step's timeout; nil
	// means the step's timeout.
	Timeout func(c *C, step time.Duration) time.Duration
	// Execute runs one attempt of the rendered step within ctx.
	Execute func(ctx context.Context, c *C, r RenderedStep, env Env) (Outcome, error)
}

// Known is what the agent's config defines that steps may name.
type Known struct {
	Checks    map[string]bool
	Receivers map[string]bool
}

// stepKind is a registered StepKind with its config behind any.
type stepKind struct {
	key      string
	new      func() any
	validate func(cfg any) error
	refs     func(cfg any, k Known) error
	render   func(cfg any, d Data, r *RenderedStep) error
	timeout  func(cfg any, step time.Duration) time.Duration
	execute  func(ctx context.Context, cfg any, r RenderedStep, env Env) (Outcome, error)
}

var stepKinds = struct {
	sync.RWMutex
	byKey  map[string]*stepKind
	byType map[reflect.Type]*stepKind // of the config pointer
}{byKey: map[string]*stepKind{}, byType: map[reflect.Type]*stepKind{}}

// commonKeys are a step's own keys, which no kind may take.
var commonKeys = map[string]bool{"name": true, "timeout": true, "retry": true, "on_failure": true}

// RegisterStep adds a step kind. It is meant for init(); a duplicate or
// incomplete registration is a programming error and panics.
func RegisterStep[C any](k StepKind[C]) {
	if k.Key == "" || k.Execute == nil || commonKeys[k.Key] {
		panic(fmt.Sprintf("runbook: incomplete step kind registration %q", k.Key))
	}
	defaults := k.Defaults
	if defaults == nil {
		defaults = func(*C) {}
	}
	sk := &stepKind{
		key: k.Key,
		new: func() any {
			c := new(C)
			defaults(c)
			return c
		},
		validate: func(cfg any) error {
			defaults(cfg.(*C))
			if k.Validate == nil {
				return nil
			}
			return k.Validate(cfg.(*C))
		},
		refs: func(cfg any, kn Known) error {
			if k.Refs == nil {
				return nil
			}
			return k.Refs(cfg.(*C), kn)
		},
		render: func(cfg any, d Data, r *RenderedStep) error {
			if k.Render == nil {
				return nil
			}
			return k.Render(cfg.(*C), d, r)
		},
		timeout: func(cfg any, step time.Duration) time.Duration {
			if k.Timeout == nil {
				return step
			}
			return k.Timeout(cfg.(*C), step)
		},
		execute: func(ctx context.Context, cfg any, r RenderedStep, env Env) (Outcome, error) {
			return k.Execute(ctx, cfg.(*C), r, env)
		},
	}
	stepKinds.Lock()
	defer stepKinds.Unlock()
	typ := reflect.TypeFor[*C]()
	if _, dup := stepKinds.byKey[k.Key]; dup {
		panic(fmt.Sprintf("runbook: step kind %q registered twice", k.Key))
	}
	if prev, dup := stepKinds.byType[typ]; dup {
		panic(fmt.Sprintf("runbook: step kinds %q and %q share the config type %s", prev.key, k.Key, typ))
	}
	stepKinds.byKey[k.Key] = sk
	stepKinds.byType[typ] = sk
}

// StepKinds lists the registered step kinds' keys, sorted.
func StepKinds() []string {
	stepKinds.RLock()
	defer stepKinds.RUnlock()
	out := make([]string, 0, len(stepKinds.byKey))
	for k := range stepKinds.byKey {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func lookupKind(key string) *stepKind {
	stepKinds.RLock()
	defer stepKinds.RUnlock()
	return stepKinds.byKey[key]
}

// kindOf returns the kind a step config belongs to (nil for none).
func kindOf(cfg any) *stepKind {
	if cfg == nil {
		return nil
	}
	stepKinds.RLock()
	defer stepKinds.RUnlock()
	return stepKinds.byType[reflect.TypeOf(cfg)]
}

// UnmarshalYAML decodes a step strictly: its own keys, and exactly the
// kinds the registry knows. It takes yaml.v3's older Unmarshaler form on
// purpose: only that one decodes with the caller's decoder, which keeps
// KnownFields (unknown keys inside a kind's config stay errors) and the
// lines of every problem.
func (s *Step) UnmarshalYAML(unmarshal func(any) error) error {
	return DecodeStep(unmarshal, s, "runbook.Step", nil)
}

// nodeOf captures the node it is decoded from. yaml.v3 hands a yaml.Node
// over as is only as a struct field or a map value, never to an unmarshal
// function, so DecodeStep asks for this instead.
type nodeOf struct{ n *yaml.Node }

func (v *nodeOf) UnmarshalYAML(n *yaml.Node) error {
	v.n = n
	return nil
}

// deferredValue holds the decoder's unmarshal function for one value of a
// step's mapping, so the value is decoded once its key says into what.
// It is left nil for a null value (yaml.v3 calls no unmarshaler for one).
type deferredValue struct{ decode func(any) error }

func (v *deferredValue) UnmarshalYAML(unmarshal func(any) error) error {
	v.decode = unmarshal
	return nil
}

// DecodeStep decodes a step from the unmarshal function yaml.v3 gives an
// UnmarshalYAML(func(any) error) method; types that embed a Step and add
// keys of their own (a drill's action: simulate) call it from theirs.
// extra maps those keys to what they decode into; typeName is the type
// the messages name, as yaml.v3 would ("runbook.Step"). Every problem in
// the mapping is reported, in document order, with yaml.v3's wording.
func DecodeStep(unmarshal func(any) error, s *Step, typeName string, extra map[string]any) error {
	var node nodeOf
	if err := unmarshal(&node); err != nil {
		return err
	}
	n := node.n
	if n == nil {
		return nil // null: no unmarshaler is called for one anyway
	}
	if n.Kind != yaml.MappingNode {
		return notAMapping(n, typeName)
	}
	// Each value's decoding is captured now and run below, once its key
	// is known. A captured function decodes with the caller's decoder,
	// still live (this runs inside its decoding), and returns the errors
	// recorded since it was captured: so nothing may be recorded between
	// capture and call. Nothing is: capturing cannot fail but for the
	// mapping itself (duplicate keys), which is returned as is.
	// testdata/errors.golden pins the messages this gives.
	values := map[string]deferredValue{}
	if err := unmarshal(&values); err != nil {
		return err
	}
	var issues []string
	for _, key := range mappingKeys(n) {
		v := values[key.Value]
		var into any
		switch key.Value {
		case "name":
			into = &s.Name
		case "timeout":
			into = &s.Timeout
		case "retry":
			into = &s.Retry
		case "on_failure":
			into = &s.OnFailure
		default:
			if p, ok := extra[key.Value]; ok {
				into = p
				break
			}
			k := lookupKind(key.Value)
			if k == nil {
				issues = append(issues, fmt.Sprintf("line %d: field %s not found in type %s", key.Line, key.Value, typeName))
				continue
			}
			if v.decode == nil {
				continue // `http: ~` sets no kind
			}
			cfg := k.new()
			s.kinds++
			if s.Config == nil {
				s.Config = cfg
			}
			into = cfg
		}
		if v.decode == nil {
			continue
		}
		if err := v.decode(into); err != nil {
			if te, ok := err.(*yaml.TypeError); ok {
				issues = append(issues, te.Errors...)
				continue
			}
			return err
		}
	}
	if len(issues) > 0 {
		return &yaml.TypeError{Errors: issues}
	}
	return nil
}

// mappingKeys returns the keys of a mapping in the order yaml.v3 decodes
// them: its own, then those merged in (<<: *anchor) that it does not set.
func mappingKeys(n *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	seen := map[string]bool{}
	var walk func(m *yaml.Node)
	walk = func(m *yaml.Node) {
		if m.Kind == yaml.AliasNode {
			m = m.Alias
		}
		if m == nil || m.Kind != yaml.MappingNode {
			return
		}
		var merge *yaml.Node
		for i := 0; i+1 < len(m.Content); i += 2 {
			k := m.Content[i]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				merge = m.Content[i+1]
				continue
			}
			if !seen[k.Value] {
				seen[k.Value] = true
				out = append(out, k)
			}
		}
		if merge == nil {
			return
		}
		if merge.Kind == yaml.SequenceNode {
			for _, item := range merge.Content {
				walk(item)
			}
			return
		}
		walk(merge)
	}
	walk(n)
	return out
}

// notAMapping is yaml.v3's message for a value that cannot become a struct.
func notAMapping(n *yaml.Node, typeName string) error {
	tag := n.ShortTag()
	value := ""
	if tag != "!!seq" && tag != "!!map" {
		value = n.Value
		if len(value) > 10 {
			value = " `" + value[:7] + "...`"
		} else {
			value = " `" + value + "`"
		}
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal %s%s into %s", n.Line, tag, value, typeName)}}
}

// MarshalJSON writes a step as the API has always shown it: its kind's
// config under the kind's key, between the name and the common fields.
func (s Step) MarshalJSON() ([]byte, error) {
	type field struct {
		key string
		val any
	}
	fields := []field{{"name", s.Name}}
	if k := kindOf(s.Config); k != nil {
		fields = append(fields, field{k.key, s.Config})
	}
	fields = append(fields, field{"timeout", s.Timeout}, field{"retry", s.Retry}, field{"on_failure", s.OnFailure})
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := writeJSONValue(&b, f.key); err != nil {
			return nil, err
		}
		b.WriteByte(':')
		if err := writeJSONValue(&b, f.val); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// writeJSONValue appends v's JSON without HTML escaping: the encoder that
// called MarshalJSON applies its own setting to what it gets back.
func writeJSONValue(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // Encode's newline
	return nil
}

// validateKind runs the kind's validation of the step's config, with each
// problem's field made relative to the step.
func validateKind(k *stepKind, cfg any) []fieldErr {
	var out []fieldErr
	for _, err := range confkit.FlattenErrors(k.validate(cfg)) {
		field, msg := k.key, err.Error()
		var fe *confkit.FieldError
		if errors.As(err, &fe) {
			if fe.Field != "" {
				field += "." + fe.Field
			}
			msg = fe.Err.Error()
		}
		out = append(out, fieldErr{field, msg})
	}
	return out
}

// fieldRenderer renders a kind's template fields, keeping the first error.
type fieldRenderer struct {
	d   Data
	err error
}

func (f *fieldRenderer) render(c escCtx, tmpl string) string {
	if f.err != nil {
		return ""
	}
	var out string
	out, f.err = render(c, tmpl, f.d)
	return out
}

// checkTemplate reports a field whose template does not parse (nil
// otherwise, which errors.Join drops).
func checkTemplate(field, text string) error {
	if _, err := parseTemplate(text); err != nil {
		return confkit.FieldErrorf(field, "%v", err)
	}
	return nil
}
