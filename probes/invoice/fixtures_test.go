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
func fixtureDir(t *testing.T) string {
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

// TestRealInvoices decodes every real PDF and image in the fixtures (OFD
// is not supported yet) and compares with what zbarimg read from them: the
// decoding limits must leave real invoices alone.
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
		if !ok || strings.HasSuffix(name, ".ofd") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			var got string
			if strings.HasSuffix(name, ".pdf") {
				got, _, err = QRFromPDF(b)
			} else {
				got, err = DecodeQRBytes(b)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("decoded %q, zbarimg read %q", got, want)
			}
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}
