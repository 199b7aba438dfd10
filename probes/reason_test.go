package probes

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// TestEveryReasonKnown keeps the vocabulary map in step with the constants.
func TestEveryReasonKnown(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "reason.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		vs, ok := node.(*ast.ValueSpec)
		if !ok || len(vs.Values) != 1 {
			return true
		}
		if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
			return true
		}
		lit, ok := vs.Values[0].(*ast.BasicLit)
		if !ok {
			return true
		}
		v, _ := strconv.Unquote(lit.Value)
		if v != "" && !Reason(v).Known() {
			t.Errorf("%s (%q) is missing from knownReasons", vs.Names[0].Name, v)
		}
		n++
		return true
	})
	if n < 40 {
		t.Fatalf("found only %d reason constants; is the parse right?", n)
	}
}
