package ui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

// Diagnostics are JSON-shaped (a probe's structs, maps and lists, or the
// same decoded from the store). The check and run pages show them as
// tables: an object as a key/value table, a list of objects as a table
// with a column per key, a list of plain values as a list, plain values
// inline, numbers with the unit their key names; what is nested deeper
// than a table in a table stays compact JSON.

// field is one key of a JSON object, in the order it came.
type field struct {
	Key string
	Val any
}

// object is a JSON object with its keys in order (a Go map would sort
// them: a struct's fields read better in the order they were declared).
type object []field

// normalize turns a diagnostic value into plain JSON values: object,
// []any, string, float64, bool or nil.
func normalize(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return decodeOrdered(dec)
}

func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := object{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				obj = append(obj, field{k, v})
			}
			_, err := dec.Token() // }
			return obj, err
		case '[':
			list := []any{}
			for dec.More() {
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := dec.Token() // ]
			return list, err
		}
		return nil, errors.New("unexpected delimiter")
	case json.Number:
		return t.Float64()
	}
	return tok, nil // string, bool, nil
}

// diagRenderer writes diagnostics as HTML for one page view.
type diagRenderer struct {
	lang string
	loc  *time.Location
	now  time.Time
}

// maxTableDepth is how many tables nest: a table's cell may hold a table;
// that table's cells show objects and lists as compact JSON.
const maxTableDepth = 2

// DiagHTML renders one diagnostic value (see the comment above); key
// names its units when it is a number.
func DiagHTML(p Page, key string, v any) template.HTML {
	n, err := normalize(v)
	if err != nil {
		return template.HTML(template.HTMLEscapeString(fmt.Sprint(v)))
	}
	r := diagRenderer{lang: p.Lang, loc: p.Zone, now: p.Now}
	var b strings.Builder
	r.value(&b, key, n, 0)
	return template.HTML(b.String())
}

// IsScalar reports whether a diagnostic is a plain value (shown in one
// key/value table with the other plain values).
func IsScalar(v any) bool {
	n, err := normalize(v)
	if err != nil {
		return true
	}
	switch n.(type) {
	case object, []any:
		return false
	}
	return true
}

func (r diagRenderer) value(b *strings.Builder, key string, v any, depth int) {
	switch x := v.(type) {
	case object:
		if depth >= maxTableDepth {
			r.compact(b, x)
			return
		}
		if len(x) == 0 {
			b.WriteString("—")
			return
		}
		b.WriteString(`<div class="scroll"><table class="kv diag">`)
		for _, f := range x {
			b.WriteString("<tr><th>")
			b.WriteString(template.HTMLEscapeString(f.Key))
			b.WriteString("</th><td>")
			r.value(b, f.Key, f.Val, depth+1)
			b.WriteString("</td></tr>")
		}
		b.WriteString("</table></div>")
	case []any:
		if len(x) == 0 {
			b.WriteString("—")
			return
		}
		if cols, ok := columns(x); ok && depth < maxTableDepth {
			r.table(b, cols, x, depth)
			return
		}
		if allScalar(x) {
			b.WriteString(`<ul class="vals">`)
			for _, e := range x {
				b.WriteString("<li>")
				r.value(b, key, e, depth+1)
				b.WriteString("</li>")
			}
			b.WriteString("</ul>")
			return
		}
		r.compact(b, x)
	case float64:
		// The raw number stays at hand on hover.
		b.WriteString(`<span title="`)
		b.WriteString(template.HTMLEscapeString(Raw(x)))
		b.WriteString(`">`)
		b.WriteString(template.HTMLEscapeString(r.scalar(key, x)))
		b.WriteString("</span>")
	default:
		b.WriteString(template.HTMLEscapeString(r.scalar(key, x)))
	}
}

// table writes a list of objects with a column per key (in the order
// keys first appear).
func (r diagRenderer) table(b *strings.Builder, cols []string, rows []any, depth int) {
	b.WriteString(`<div class="scroll"><table class="diag cols"><thead><tr>`)
	for _, c := range cols {
		b.WriteString("<th>")
		b.WriteString(template.HTMLEscapeString(c))
		b.WriteString("</th>")
	}
	b.WriteString("</tr></thead><tbody>")
	for _, row := range rows {
		obj := row.(object)
		b.WriteString("<tr>")
		for _, c := range cols {
			b.WriteString("<td>")
			found := false
			for _, f := range obj {
				if f.Key == c {
					r.value(b, c, f.Val, depth+1)
					found = true
					break
				}
			}
			if !found {
				b.WriteString("—")
			}
			b.WriteString("</td>")
		}
		b.WriteString("</tr>")
	}
	b.WriteString("</tbody></table></div>")
}

// columns are the keys of a list made only of objects, in the order they
// first appear.
func columns(list []any) ([]string, bool) {
	var cols []string
	seen := map[string]bool{}
	for _, e := range list {
		obj, ok := e.(object)
		if !ok {
			return nil, false
		}
		for _, f := range obj {
			if !seen[f.Key] {
				seen[f.Key] = true
				cols = append(cols, f.Key)
			}
		}
	}
	return cols, len(cols) > 0
}

func allScalar(list []any) bool {
	for _, e := range list {
		switch e.(type) {
		case object, []any:
			return false
		}
	}
	return true
}

// compact writes a nested value as one line of JSON.
func (r diagRenderer) compact(b *strings.Builder, v any) {
	b.WriteString(`<code class="json">`)
	var buf bytes.Buffer
	writeCompact(&buf, v)
	b.WriteString(template.HTMLEscapeString(buf.String()))
	b.WriteString("</code>")
}

func writeCompact(w io.Writer, v any) {
	switch x := v.(type) {
	case object:
		io.WriteString(w, "{")
		for i, f := range x {
			if i > 0 {
				io.WriteString(w, ",")
			}
			k, _ := json.Marshal(f.Key)
			w.Write(k)
			io.WriteString(w, ":")
			writeCompact(w, f.Val)
		}
		io.WriteString(w, "}")
	case []any:
		io.WriteString(w, "[")
		for i, e := range x {
			if i > 0 {
				io.WriteString(w, ",")
			}
			writeCompact(w, e)
		}
		io.WriteString(w, "]")
	default:
		b, _ := json.Marshal(x)
		w.Write(b)
	}
}

// scalar is a plain value as text: numbers with the unit their key names
// (rtt_seconds), times (RFC 3339 strings) in the page's zone.
func (r diagRenderer) scalar(key string, v any) string {
	switch x := v.(type) {
	case nil:
		return "—"
	case float64:
		return HumanValue(r.lang, r.loc, r.now, key, x)
	case bool:
		return T(r.lang, fmt.Sprintf("bool.%t", x))
	case string:
		if len(x) >= 20 && len(x) <= 40 && x[4] == '-' && x[10] == 'T' {
			if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
				return Timestamp(r.loc, t)
			}
		}
		return x
	}
	return fmt.Sprint(v)
}
