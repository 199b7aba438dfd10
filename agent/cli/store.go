package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/vigil-project/vigil/agent/store"
)

// storeCheck runs SQLite's quick_check (integrity_check with full) on the
// store file and prints what it found: exit 0 when sound, 1 when damaged.
func storeCheck(ctx context.Context, stdout, stderr io.Writer, path string, full bool) int {
	problems, err := store.Check(ctx, path, full)
	if err != nil {
		fmt.Fprintf(stderr, "vigil store check: %v\n", err)
		return ExitFailed
	}
	if len(problems) == 0 {
		fmt.Fprintf(stdout, "%s: ok\n", path)
		return ExitOK
	}
	fmt.Fprintf(stdout, "%s is damaged:\n", path)
	for _, p := range problems {
		fmt.Fprintf(stdout, "  %s\n", p)
	}
	fmt.Fprintf(stdout, "Stop the agent, then run: vigil store recover --storage.path=%s\n", path)
	return ExitFailed
}

// storeRecover moves a damaged store aside and copies what can be read
// into a new one.
func storeRecover(ctx context.Context, stdout, stderr io.Writer, path string) int {
	rep, err := store.Recover(ctx, path)
	if err != nil {
		fmt.Fprintf(stderr, "vigil store recover: %v\n", err)
		if rep.DamagedPath != "" {
			fmt.Fprintf(stderr, "the damaged file (if it was moved) is at %s\n", rep.DamagedPath)
		}
		return ExitFailed
	}
	fmt.Fprintf(stdout, "damaged store moved to %s\nnew store at %s with what could be read:\n\n", rep.DamagedPath, path)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tROWS KEPT\tUNREADABLE\tLAST ERROR")
	for _, t := range rep.Tables {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", t.Table, t.Copied, t.Unreadable, t.Err)
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\nStart the agent again; keep the damaged file until you no longer need it.")
	return ExitOK
}
