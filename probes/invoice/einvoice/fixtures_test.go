package einvoice

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
		dir = filepath.Join("..", "..", "..", "..", "shared", "fixtures", "einvoice")
	}
	if _, err := os.Stat(filepath.Join(dir, "EXPECTED.tsv")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("e-invoice fixtures missing in CI: %v", err)
		}
		testenv.SkipOptional(t, "the e-invoice fixtures", fmt.Sprintf("not present (%v); VIGIL_FIXTURES points elsewhere", err))
	}
	return dir
}

// tsvRows reads the tab-separated rows of a fixture file, without comment
// lines, each split in at most n columns.
func tsvRows(t *testing.T, name string, n int) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtureDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sc.Text() == "" || strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		rows = append(rows, strings.SplitN(sc.Text(), "\t", n))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// checkRealPayload parses a payload a real platform emitted and checks
// type, number, amount and date against the raw fields, read here without
// the parser.
func checkRealPayload(t *testing.T, payload string) Payload {
	t.Helper()
	p, err := ParsePayload(payload)
	if err != nil {
		t.Fatalf("ParsePayload(%q): %v", payload, err)
	}
	raw := strings.Split(payload, ",")
	yuan, err := strconv.ParseFloat(raw[4], 64)
	if err != nil {
		t.Fatalf("test oracle: amount %q: %v", raw[4], err)
	}
	if p.Type != raw[1] || p.Number != raw[3] || int64(p.Amount) != int64(math.Round(yuan*100)) ||
		p.Date.Format("20060102") != raw[5] || p.Date.Location().String() != "UTC" {
		t.Fatalf("ParsePayload(%q) = type %s number %s amount %s date %v", payload, p.Type, p.Number, p.Amount, p.Date)
	}
	// The amount basis the issue states for the types seen in real payloads.
	switch p.Type {
	case "01", "04", "08", "10", "20":
		if p.AmountBasis() != BasisExcludingTax {
			t.Errorf("type %s: amount basis %v", p.Type, p.AmountBasis())
		}
	case "31", "32":
		if p.AmountBasis() != BasisIncludingTax {
			t.Errorf("type %s: amount basis %v", p.Type, p.AmountBasis())
		}
	}
	// The trailing comma is the one shape told by counting commas.
	if trailing := strings.Count(payload, ",") == 8 && strings.HasSuffix(payload, ","); trailing != slices.Contains(p.Normalized, NormTrailingComma) {
		t.Errorf("trailing comma %v, normalised %v", trailing, p.Normalized)
	}
	return p
}

// TestPayloadsTSV parses every payload string seen in public code; the
// notes say which shape each one has.
func TestPayloadsTSV(t *testing.T) {
	rows := tsvRows(t, "payloads.tsv", 3)
	if len(rows) < 41 {
		t.Fatalf("payloads.tsv has %d rows, the README says 41", len(rows))
	}
	seen := map[string]bool{}
	for i, row := range rows {
		if len(row) != 3 {
			t.Fatalf("row %d: %q is not payload<TAB>source<TAB>note", i+1, row)
		}
		payload, note := row[0], row[2]
		t.Run(fmt.Sprintf("%02d", i+1), func(t *testing.T) {
			p := checkRealPayload(t, payload)
			for _, n := range p.Normalized {
				seen[n] = true
			}
			for keyword, norms := range map[string][]string{
				"lower-case checksum": {NormLowerChecksum},
				"space-padded":        {NormSpaceCode, NormSpaceCheckCode},
				"7 fields":            {NormSevenFields},
				"empty checksum":      {NormEmptyChecksum},
			} {
				for _, n := range norms {
					if strings.Contains(note, keyword) && !slices.Contains(p.Normalized, n) {
						t.Errorf("%q (%s): normalised %v, expected %q", payload, note, p.Normalized, n)
					}
				}
			}
			if strings.Contains(note, "type 51") && p.Type != TypeRailwayTicket {
				t.Errorf("%q: type %s", payload, p.Type)
			}
		})
	}
	for _, n := range []string{NormTrailingComma, NormLowerChecksum, NormSpaceCode, NormSpaceCheckCode, NormSevenFields, NormEmptyChecksum} {
		if !seen[n] {
			t.Errorf("no payload in payloads.tsv was normalised with %q", n)
		}
	}
}

// TestExpectedTSV parses the QR payload of every real document as zbarimg
// read it.
func TestExpectedTSV(t *testing.T) {
	rows := tsvRows(t, "EXPECTED.tsv", 2)
	if len(rows) < 40 {
		t.Fatalf("EXPECTED.tsv has only %d rows", len(rows))
	}
	types := map[string]bool{}
	for _, row := range rows {
		if len(row) != 2 {
			t.Fatalf("row %q is not file<TAB>payload", row)
		}
		t.Run(row[0], func(t *testing.T) {
			p := checkRealPayload(t, row[1])
			types[p.Type] = true
			// Types met on real documents are the ones whose rules the
			// table says were checked.
			if ti, _ := LookupType(p.Type); !ti.Verified {
				t.Errorf("type %s is on a real document but not marked Verified", p.Type)
			}
		})
	}
	for _, typ := range []string{"10", "20", "31", "32"} {
		if !types[typ] {
			t.Errorf("no document of type %s parsed", typ)
		}
	}
}
