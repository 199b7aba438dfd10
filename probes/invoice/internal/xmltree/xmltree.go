// Package xmltree parses a small XML document from an untrusted source into
// a tree of elements, bounded in nesting depth and in tokens, for the OFD and
// 数电 XML invoice readers. Names are local (namespace prefixes dropped:
// producers spell the same element ofd:Page, Page or fp:InvoiceNo); DTDs
// are not processed, so entities cannot expand.
package xmltree

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"encoding/xml"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// Node is one element.
type Node struct {
	Name     string // local name
	Attrs    []xml.Attr
	Text     string // character data directly inside the element, trimmed
	Children []*Node
}

// LimitError is a document refused for its shape: deeper or longer than the
// caller allows.
type LimitError struct {
	Limit string // "depth" or "tokens"
	Max   int
}

func (e *LimitError) Error() string {
	if e.Limit == "depth" {
		return fmt.Sprintf("XML nested deeper than %d elements", e.Max)
	}
	return fmt.Sprintf("XML longer than %d tokens", e.Max)
}

// Parse reads one XML document. maxDepth caps element nesting, maxTokens
// the tokens (elements, text runs, comments) read. A UTF-8 byte-order mark
// is skipped; GBK, GB2312 and GB18030 declarations are decoded.
func Parse(b []byte, maxDepth, maxTokens int) (*Node, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	d := xml.NewDecoder(bytes.NewReader(b))
	d.CharsetReader = charsetReader
	var (
		stack  []*Node
		root   *Node
		text   [][]byte
		tokens int
	)
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		var syn *xml.SyntaxError
		if errors.As(err, &syn) {
			return nil, err // "XML syntax error on line N: …"
		}
		if err != nil {
			return nil, fmt.Errorf("XML: %w", err)
		}
		tokens++
		if tokens > maxTokens {
			return nil, &LimitError{Limit: "tokens", Max: maxTokens}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, &LimitError{Limit: "depth", Max: maxDepth}
			}
			if root != nil && len(stack) == 0 {
				return nil, errors.New("XML: more than one root element")
			}
			n := &Node{Name: t.Name.Local, Attrs: attrs(t.Attr)}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
			text = append(text, nil)
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1].Name != t.Name.Local {
				return nil, fmt.Errorf("XML: unexpected end element </%s>", t.Name.Local)
			}
			stack[len(stack)-1].Text = strings.TrimSpace(string(text[len(text)-1]))
			stack, text = stack[:len(stack)-1], text[:len(text)-1]
		case xml.CharData:
			if len(text) > 0 {
				text[len(text)-1] = append(text[len(text)-1], t...)
			}
		}
	}
	if len(stack) != 0 {
		return nil, fmt.Errorf("XML: element <%s> not closed", stack[len(stack)-1].Name)
	}
	if root == nil {
		return nil, errors.New("XML: no root element")
	}
	return root, nil
}

// attrs copies the attributes with local names (RawToken keeps prefixes
// in Space).
func attrs(in []xml.Attr) []xml.Attr {
	if len(in) == 0 {
		return nil
	}
	out := make([]xml.Attr, len(in))
	for i, a := range in {
		out[i] = xml.Attr{Name: xml.Name{Local: a.Name.Local}, Value: a.Value}
	}
	return out
}

func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "gbk", "gb2312", "cp936":
		return simplifiedchinese.GBK.NewDecoder().Reader(in), nil
	case "gb18030":
		return simplifiedchinese.GB18030.NewDecoder().Reader(in), nil
	}
	return nil, fmt.Errorf("unsupported encoding %q", label)
}

// Attr returns the value of the named attribute, or "".
func (n *Node) Attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// Child returns the first child element with the local name, or nil.
func (n *Node) Child(name string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// All returns the child elements with the local name.
func (n *Node) All(name string) []*Node {
	if n == nil {
		return nil
	}
	var out []*Node
	for _, c := range n.Children {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// Path follows child names from n; nil when one is missing.
func (n *Node) Path(names ...string) *Node {
	for _, name := range names {
		n = n.Child(name)
	}
	return n
}

// TextOf returns the text of the element at the path below n, or "".
func (n *Node) TextOf(names ...string) string {
	if c := n.Path(names...); c != nil {
		return c.Text
	}
	return ""
}

// Walk calls fn for n and every element below it, depth first, in document
// order; fn returning false skips that element's children.
func (n *Node) Walk(fn func(*Node) bool) {
	if n == nil || !fn(n) {
		return
	}
	for _, c := range n.Children {
		c.Walk(fn)
	}
}
