package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/vigil-project/vigil/internal/confkit"
	"gopkg.in/yaml.v3"
)

// Error is one config problem with its position in the file.
type Error struct {
	File      string
	Line, Col int
	// Path is the key path, e.g. "checks[2].interval"; empty for file-level problems.
	Path string
	Msg  string
}

func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one config file, in file order.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// decoder walks a yaml.Node tree into Go values strictly: unknown keys,
// duplicate keys and wrong kinds are reported with their position, and
// decoding goes on so that one run reports every problem. yaml.v3's own
// KnownFields mode stops at the first document error and gives no columns.
type decoder struct {
	file string
	errs Errors
	// fields caches yamlFields per struct type: a config of 10,000 checks
	// decodes the same few types 10,000 times each.
	fields map[reflect.Type]map[string][]int
	// types caches probes.Types() for the checks' key suggestions.
	types []string
}

// structFields is yamlFields of t, computed once per decoder.
func (d *decoder) structFields(t reflect.Type) map[string][]int {
	f, ok := d.fields[t]
	if !ok {
		if d.fields == nil {
			d.fields = map[reflect.Type]map[string][]int{}
		}
		f = yamlFields(t)
		d.fields[t] = f
	}
	return f
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	e := Error{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

var (
	unmarshalerType         = reflect.TypeFor[yaml.Unmarshaler]()
	obsoleteUnmarshalerType = reflect.TypeFor[interface {
		UnmarshalYAML(func(any) error) error
	}]()
)

// extraKeys lets a struct's owner claim mapping keys that are not fields
// (the check's type-named section). Claim returns false for an unknown key;
// Names are offered as suggestions for typos.
type extraKeys struct {
	Claim func(key, value *yaml.Node) bool
	Names []string
}

// keyClaimer is a struct whose mapping holds keys that are not its fields
// and that a registry decides (a receiver's `<kind>_configs` lists).
type keyClaimer interface {
	extraKeys(d *decoder, path string) extraKeys
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Tag == "!!null" {
		return // keep defaults
	}
	if v.CanAddr() {
		pt := v.Addr().Type()
		if pt.Implements(unmarshalerType) || pt.Implements(obsoleteUnmarshalerType) {
			if err := n.Decode(v.Addr().Interface()); err != nil {
				d.errorf(n, path, "%s", yamlMessage(err))
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		var extra extraKeys
		if v.CanAddr() {
			if x, ok := v.Addr().Interface().(keyClaimer); ok {
				extra = x.extraKeys(d, path)
			}
		}
		d.decodeStruct(n, v, path, extra)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "expected a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "expected a mapping, got %s", kindName(n))
			return
		}
		if v.Type().Key().Kind() != reflect.String {
			panic("config: only string-keyed maps are supported")
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		d.eachKey(n, path, func(key string, k, val *yaml.Node) {
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, elem, joinPath(path, key))
			m.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), elem)
		})
		v.Set(m)
	default:
		d.decodeScalar(n, v, path)
	}
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected %s, got %s", typeName(v.Type()), kindName(n))
		return
	}
	ok := true
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
		return
	case reflect.Bool:
		ok = n.Tag == "!!bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		ok = n.Tag == "!!int"
	case reflect.Float32, reflect.Float64:
		ok = n.Tag == "!!int" || n.Tag == "!!float"
	}
	if ok {
		ok = n.Decode(v.Addr().Interface()) == nil
	}
	if !ok {
		d.errorf(n, path, "expected %s, got %q", typeName(v.Type()), n.Value)
	}
}

// decodeStruct decodes a mapping into the struct's yaml-tagged fields.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, extra extraKeys) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	fields := d.structFields(v.Type())
	d.eachKey(n, path, func(key string, k, val *yaml.Node) {
		if idx, ok := fields[key]; ok {
			d.decode(val, v.FieldByIndex(idx), joinPath(path, key))
			return
		}
		if extra.Claim != nil && extra.Claim(k, val) {
			return
		}
		d.errorf(k, joinPath(path, key), "unknown field%s", suggest(key, fields, extra.Names))
	})
}

// eachKey iterates a mapping's keys, reporting non-string and duplicate keys.
func (d *decoder) eachKey(n *yaml.Node, path string, fn func(key string, k, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "mapping keys must be strings")
			continue
		}
		if k.Tag == "!!merge" {
			d.errorf(k, path, "merge keys (<<) are not supported")
			continue
		}
		if seen[k.Value] {
			d.errorf(k, joinPath(path, k.Value), "duplicate key")
			continue
		}
		seen[k.Value] = true
		fn(k.Value, k, val)
	}
}

// yamlFields maps yaml keys to struct field indexes; fields tagged
// ",inline" contribute their own fields (shared settings of a family).
func yamlFields(t reflect.Type) map[string][]int {
	m := make(map[string][]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
			for sub, idx := range yamlFields(f.Type) {
				m[sub] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = []int{i}
	}
	return m
}

// suggest names the closest known key, for typos such as "intervall".
func suggest(key string, fields map[string][]int, extra []string) string {
	best, bestDist := "", 3
	names := append([]string(nil), extra...)
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if dist := confkit.Distance(key, name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

// yamlMessage strips yaml.v3's "yaml: " prefixes and line hints; the
// position is reported by Error itself.
func yamlMessage(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	if strings.HasPrefix(msg, "line ") {
		if _, rest, ok := strings.Cut(msg, ": "); ok {
			msg = rest
		}
	}
	return msg
}
