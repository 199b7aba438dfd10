package invoice

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/internal/testenv"
)

// fixtureDir holds the real e-invoices shared by every checkout
// (../shared/fixtures/einvoice beside the repository); VIGIL_FIXTURES
// points elsewhere. Tests read them in place and never copy them.
func fixtureDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("VIGIL_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "fixtures", "einvoice")
	}
	if _, err := os.Stat(filepath.Join(dir, "EXPECTED.tsv")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("e-invoice fixtures missing in CI: %v", err)
		}
		testenv.SkipOptional(t, "the e-invoice fixtures", fmt.Sprintf("not present (%v); VIGIL_FIXTURES points elsewhere", err))
	}
	return dir
}

// TestRealInvoices reads every real document in the fixtures — PDF, OFD,
// images — as `vigil einvoice inspect` does: each decodes to what zbarimg
// read from it, the payload parses with no problem, and an OFD's embedded
// number, date and amount agree with its QR. The decoding limits must
// leave real invoices alone.
func TestRealInvoices(t *testing.T) {
	t.Parallel()
	dir := fixtureDir(t)
	f, err := os.Open(filepath.Join(dir, "EXPECTED.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, want, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			in := Inspect(name, b)
			if in.Unreadable != "" || in.Payload != want || len(in.Problems) > 0 || in.Fields == nil {
				t.Fatalf("%s: read %q (unreadable %q, problems %q), zbarimg read %q", in.Format, in.Payload, in.Unreadable, in.Problems, want)
			}
			if in.Format == "ofd" && (in.Doc == nil || in.Doc.Number != in.Fields.Number) {
				t.Errorf("OFD's embedded data %+v, QR number %s", in.Doc, in.Fields.Number)
			}
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}
