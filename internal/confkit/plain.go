package confkit

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Plain is v as its YAML reads: what yaml.Marshal (gopkg.in/yaml.v3) would
// write, decoded back into generic values — map[string]any, []any, string,
// integers, floats, bool and nil — without writing and parsing the text.
// The API shows every check's config section this way; the round trip
// through text cost 0.1 ms a check, most of an API page.
//
// It follows the encoder: yaml tags (name, omitempty, inline; flow is
// layout only), MarshalYAML and MarshalText where the value's type has
// them (Secret's keeps secrets out), durations as their String, IsZero for
// omitempty. What it does not follow exactly — a yaml.Node, a map key that
// is not a string, a string that is not UTF-8, a float the text would not
// hold — is an error: the caller renders such a value through the text.
// TestPlainMatchesYAML holds it to the round trip.
func Plain(v any) (any, error) {
	return plain(reflect.ValueOf(v))
}

// PlainViaText is what Plain stands in for: v written by yaml.Marshal and
// read back into generic values. It is slower, and for what Plain refuses.
func PlainViaText(v any) (any, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = yaml.Unmarshal(b, &out)
	return out, err
}

var errNotPlain = errors.New("not a plain YAML value")

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	nodeType        = reflect.TypeFor[yaml.Node]()
)

func plain(in reflect.Value) (any, error) {
	if !in.IsValid() || in.Kind() == reflect.Pointer && in.IsNil() || in.Kind() == reflect.Interface && in.IsNil() {
		return nil, nil
	}
	if !in.CanInterface() {
		return nil, fmt.Errorf("%w: unexported %s", errNotPlain, in.Type())
	}
	if t := in.Type(); t == nodeType || t == reflect.PointerTo(nodeType) {
		return nil, fmt.Errorf("%w: %s", errNotPlain, t)
	}
	switch value := in.Interface().(type) {
	case time.Time:
		// Timestamps read back into an interface as strings.
		return value.Format(time.RFC3339Nano), nil
	case *time.Time:
		return value.Format(time.RFC3339Nano), nil
	case time.Duration:
		return value.String(), nil
	case yaml.Marshaler:
		v, err := value.MarshalYAML()
		if err != nil {
			return nil, err
		}
		return plain(reflect.ValueOf(v))
	case encoding.TextMarshaler:
		text, err := value.MarshalText()
		if err != nil {
			return nil, err
		}
		return plainString(string(text))
	}
	switch in.Kind() {
	case reflect.Interface, reflect.Pointer:
		return plain(in.Elem())
	case reflect.Map:
		out := make(map[string]any, in.Len())
		if err := plainMap(in, out); err != nil {
			return nil, err
		}
		return out, nil
	case reflect.Struct:
		return plainStruct(in)
	case reflect.Slice, reflect.Array:
		out := make([]any, in.Len())
		for i := range out {
			v, err := plain(in.Index(i))
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case reflect.String:
		return plainString(in.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return in.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return in.Uint(), nil
	case reflect.Float32, reflect.Float64:
		// The text holds the shortest form at the value's own precision.
		f := in.Float()
		if f != f || f > 1e308 || f < -1e308 {
			return nil, fmt.Errorf("%w: float %v", errNotPlain, f)
		}
		bits := 64
		if in.Kind() == reflect.Float32 {
			bits = 32
		}
		return strconv.ParseFloat(strconv.FormatFloat(f, 'g', -1, bits), 64)
	case reflect.Bool:
		return in.Bool(), nil
	}
	return nil, fmt.Errorf("%w: %s", errNotPlain, in.Type())
}

func plainString(s string) (any, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("%w: string is not UTF-8", errNotPlain)
	}
	return s, nil
}

// plainMap adds m's entries to out; keys must read as strings.
func plainMap(m reflect.Value, out map[string]any) error {
	iter := m.MapRange()
	for iter.Next() {
		k, err := plain(iter.Key())
		if err != nil {
			return err
		}
		ks, ok := k.(string)
		if !ok {
			return fmt.Errorf("%w: map key %v", errNotPlain, k)
		}
		if _, dup := out[ks]; dup {
			return fmt.Errorf("%w: key %q twice", errNotPlain, ks)
		}
		v, err := plain(iter.Value())
		if err != nil {
			return err
		}
		out[ks] = v
	}
	return nil
}

func plainStruct(in reflect.Value) (any, error) {
	info, err := structInfoOf(in.Type())
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(info.fields))
	for _, f := range info.fields {
		v, ok := fieldByIndex(in, f.index)
		if !ok || f.omitEmpty && isZero(v) {
			continue
		}
		pv, err := plain(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.key, err)
		}
		out[f.key] = pv
	}
	if info.inlineMap != nil {
		if m, ok := fieldByIndex(in, info.inlineMap); ok && m.Len() > 0 {
			if err := plainMap(m, out); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// fieldByIndex walks an inline path; a nil pointer on the way means the
// field is absent.
func fieldByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	for _, i := range index {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(i)
	}
	return v, true
}

// isZero is omitempty's test: IsZero where the type has it, else the
// kind's zero (a struct's exported fields all zero).
func isZero(v reflect.Value) bool {
	if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
		if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
			return true
		}
		return z.IsZero()
	}
	switch v.Kind() {
	case reflect.String, reflect.Slice, reflect.Map:
		return v.Len() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			if t.Field(i).PkgPath == "" && !isZero(v.Field(i)) {
				return false
			}
		}
		return true
	}
	return false
}

type plainField struct {
	key       string
	index     []int // from the outer struct through inline structs
	omitEmpty bool
}

type plainInfo struct {
	fields    []plainField
	inlineMap []int // the ,inline map field, nil if none
}

var structInfos sync.Map // reflect.Type → *plainInfo or error

func structInfoOf(t reflect.Type) (*plainInfo, error) {
	if v, ok := structInfos.Load(t); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.(*plainInfo), nil
	}
	info, err := newStructInfo(t)
	if err != nil {
		structInfos.Store(t, err)
		return nil, err
	}
	structInfos.Store(t, info)
	return info, nil
}

func newStructInfo(t reflect.Type) (*plainInfo, error) {
	info := &plainInfo{}
	keys := map[string]bool{}
	add := func(f plainField) error {
		if keys[f.key] {
			return fmt.Errorf("%w: key %q twice in %s", errNotPlain, f.key, t)
		}
		keys[f.key] = true
		info.fields = append(info.fields, f)
		return nil
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.PkgPath != "" && !sf.Anonymous {
			continue
		}
		tag := sf.Tag.Get("yaml")
		if tag == "" && !strings.Contains(string(sf.Tag), ":") {
			tag = string(sf.Tag)
		}
		if tag == "-" {
			continue
		}
		name, flags, _ := strings.Cut(tag, ",")
		var omitEmpty, inline bool
		if flags != "" {
			for flag := range strings.SplitSeq(flags, ",") {
				switch flag {
				case "omitempty":
					omitEmpty = true
				case "flow":
				case "inline":
					inline = true
				default:
					return nil, fmt.Errorf("%w: flag %q in %s", errNotPlain, flag, t)
				}
			}
		}
		if !inline {
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			if err := add(plainField{key: name, index: []int{i}, omitEmpty: omitEmpty}); err != nil {
				return nil, err
			}
			continue
		}
		ft := sf.Type
		if ft.Kind() == reflect.Map {
			if info.inlineMap != nil || ft.Key().Kind() != reflect.String {
				return nil, fmt.Errorf("%w: inline map in %s", errNotPlain, t)
			}
			info.inlineMap = []int{i}
			continue
		}
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() != reflect.Struct {
			return nil, fmt.Errorf("%w: inline %s in %s", errNotPlain, sf.Type, t)
		}
		if reflect.PointerTo(ft).Implements(unmarshalerType) {
			// The encoder leaves out an inline struct that unmarshals itself.
			continue
		}
		inner, err := structInfoOf(ft)
		if err != nil {
			return nil, err
		}
		for _, f := range inner.fields {
			f.index = append([]int{i}, f.index...)
			if err := add(f); err != nil {
				return nil, err
			}
		}
		if inner.inlineMap != nil {
			return nil, fmt.Errorf("%w: inline map nested in %s", errNotPlain, t)
		}
	}
	return info, nil
}
