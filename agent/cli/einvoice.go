package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vigil-project/vigil/probes/invoice"
)

// Exit codes of `vigil einvoice inspect`.
const (
	exitInvalid    = 1 // read, but something is wrong with it
	exitUnreadable = 2 // nothing could be read
)

// maxInspectBytes bounds one input file: a real invoice is well under it.
const maxInspectBytes = 64 << 20

// einvoiceInspect reads each argument — a file (PNG, JPEG, PDF, OFD, XML,
// told apart by content) or else a raw QR payload — and prints what it
// says and every problem. Exit 0 when all are valid, 1 when one is
// invalid, 2 when one could not be read.
func einvoiceInspect(stdout, stderr io.Writer, args []string, output string) int {
	code := ExitOK
	var all []invoice.Inspection
	for _, arg := range args {
		in := inspectArg(arg)
		switch {
		case in.Unreadable != "":
			code = max(code, exitUnreadable)
		case len(in.Problems) > 0:
			code = max(code, exitInvalid)
		}
		all = append(all, in)
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(all); err != nil {
			fmt.Fprintln(stderr, err)
			return ExitFailed
		}
		return code
	}
	for i, in := range all {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printInspection(stdout, in)
	}
	return code
}

func inspectArg(arg string) invoice.Inspection {
	st, err := os.Stat(arg)
	if err != nil {
		// Not a file: a payload (they contain commas, files rarely do).
		if strings.Count(arg, ",") >= 6 {
			return invoice.Inspect("payload", []byte(arg))
		}
		return invoice.Inspection{Input: arg, Unreadable: err.Error()}
	}
	if st.Size() > maxInspectBytes {
		return invoice.Inspection{Input: arg, Unreadable: fmt.Sprintf("%d bytes: larger than the %d MB an invoice document can be", st.Size(), maxInspectBytes>>20)}
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		return invoice.Inspection{Input: arg, Unreadable: err.Error()}
	}
	return invoice.Inspect(arg, b)
}

func printInspection(w io.Writer, in invoice.Inspection) {
	verdict := "valid"
	switch {
	case in.Unreadable != "":
		verdict = "unreadable: " + in.Unreadable
	case len(in.Problems) > 0:
		verdict = fmt.Sprintf("invalid (%d problem(s))", len(in.Problems))
	}
	fmt.Fprintf(w, "%s (%s): %s\n", in.Input, in.Format, verdict)
	if in.Payload != "" {
		fmt.Fprintf(w, "  payload     %s\n", in.Payload)
	}
	if f := in.Fields; f != nil {
		fmt.Fprintf(w, "  type        %s %s / %s\n", f.Type, f.TypeZH, f.TypeEN)
		if f.Code != "" {
			fmt.Fprintf(w, "  code        %s\n", f.Code)
		}
		fmt.Fprintf(w, "  number      %s\n  date        %s\n", f.Number, f.Date)
		fmt.Fprintf(w, "  amount      %s (%s)\n", f.Amount, strings.ReplaceAll(f.Basis, "_", " "))
		if f.CheckCode != "" {
			fmt.Fprintf(w, "  check code  %s\n", f.CheckCode)
		}
		if f.Checksum != "" {
			fmt.Fprintf(w, "  checksum    %s (form only: no public algorithm)\n", f.Checksum)
		}
		if len(f.Normalized) > 0 {
			fmt.Fprintf(w, "  normalised  %s\n", strings.Join(f.Normalized, ", "))
		}
	}
	if d := in.Doc; d != nil {
		fmt.Fprintln(w, "  document")
		for _, kv := range [][2]string{{"number", d.Number}, {"date", d.Date}, {"total", d.Total}, {"excl. tax", d.Excluding},
			{"tax", d.Tax}, {"seller", strings.TrimSpace(d.Seller + " " + d.SellerTaxID)}, {"buyer", strings.TrimSpace(d.Buyer + " " + d.BuyerTaxID)}} {
			if kv[1] != "" {
				fmt.Fprintf(w, "    %-10s %s\n", kv[0], kv[1])
			}
		}
		for _, s := range d.Signatures {
			fmt.Fprintf(w, "    signature  %s\n", s)
		}
		for _, s := range d.Warnings {
			fmt.Fprintf(w, "    warning    %s\n", s)
		}
	}
	for _, p := range in.Problems {
		fmt.Fprintf(w, "  problem     %s\n", p)
	}
}
