package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes/invoice"
)

// TestEinvoiceInspect: valid, invalid and unreadable inputs give exit 0, 1
// and 2 and name what is wrong; -o json carries the same.
func TestEinvoiceInspect(t *testing.T) {
	t.Parallel()
	dir := os.Getenv("VIGIL_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "fixtures", "einvoice")
	}
	if _, err := os.Stat(filepath.Join(dir, "EXPECTED.tsv")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("e-invoice fixtures missing in CI: %v", err)
		}
		testenv.SkipOptional(t, "the e-invoice fixtures", err.Error())
	}
	garbage := filepath.Join(t.TempDir(), "garbage.ofd")
	os.WriteFile(garbage, []byte("PK\x03\x04not a zip"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"real OFD and PDF", []string{filepath.Join(dir, "jnb_ofd2.ofd"), filepath.Join(dir, "vm_01.pdf")}, 0,
			[]string{"(ofd): valid", "31 电子发票(增值税专用发票) / fully digital special invoice", "111598.39 (including tax)", "space-filled code", "seller     上海慧梓电子科技有限公司 91310118759561794M", "(pdf): valid"}},
		{"signed OFD", []string{filepath.Join(dir, "zc310_999.ofd")}, 0, []string{"10000.00 (excluding tax)", "seal \"测试全国统一发票监制章国家税务总局重庆市税务局\"", "not verified"}},
		{"raw payload", []string{"01,32,,26127000000227474407,168.17,20260501,,68ae"}, 0, []string{"lower-case checksum"}},
		{"malformed payload", []string{"01,32,,123,1.00,20240112,,A1D6"}, 1, []string{"invalid (1 problem(s))", `field number: "123" is not a 20-digit invoice number`}},
		{"not a zip", []string{garbage}, 2, []string{"(ofd): unreadable"}},
		{"worst wins", []string{"01,32,,123,1.00,20240112,,A1D6", garbage}, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Run(append([]string{"einvoice", "inspect"}, tc.args...), &out, &errOut)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, out.String(), errOut.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	var out bytes.Buffer
	if code := Run([]string{"einvoice", "inspect", "-o", "json", filepath.Join(dir, "erma0_sample.ofd")}, &out, &out); code != 0 {
		t.Fatalf("json: exit %d: %s", code, out.String())
	}
	var got []invoice.Inspection
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || len(got) != 1 || got[0].Fields == nil || got[0].Fields.Number != "24322000000489101796" || got[0].Doc == nil {
		t.Errorf("json: %v %+v", err, got)
	}
}
