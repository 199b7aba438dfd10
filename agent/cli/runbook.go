package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-project/vigil/agent/client"
)

// runbookCmd carries out `vigil runbook ...` against a running agent.
type runbookCmd struct {
	agentURL string
	by       string
	stdout   io.Writer
	stderr   io.Writer
}

func (c runbookCmd) fail(what string, err error) int {
	fmt.Fprintf(c.stderr, "vigil runbook %s: %v\n", what, err)
	return ExitFailed
}

func (c runbookCmd) runs(ctx context.Context, state string, limit int) int {
	runs, err := client.New(c.agentURL).Runs(ctx, state, limit)
	if err != nil {
		return c.fail("runs", err)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRUNBOOK\tTARGET\tSTATE\tTRIGGER\tSTARTED\tERROR")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Runbook, r.Target, r.State, r.Trigger, r.CreatedAt.Local().Format("01-02 15:04:05"), oneLine(r.Error, 80))
	}
	tw.Flush()
	return ExitOK
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func (c runbookCmd) show(ctx context.Context, id string) int {
	r, err := client.New(c.agentURL).Run(ctx, id)
	if err != nil {
		return c.fail("show", err)
	}
	fmt.Fprintf(c.stdout, "run %s: %s for %s — %s\ntrigger: %s (mode %s, fencing token %d)\n", r.ID, r.Runbook, r.Target, r.State, r.Trigger, r.Mode, r.Fencing)
	if r.Error != "" {
		fmt.Fprintf(c.stdout, "error: %s\n", r.Error)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEVENT\tSTEP\tATTEMPT\tTOOK\tDETAIL")
	for _, e := range r.Timeline {
		step := ""
		if e.Step != nil {
			step = fmt.Sprintf("%s#%d %s", e.Phase, *e.Step, e.Name)
		}
		detail := string(e.Detail)
		if e.Error != "" {
			detail = "ERROR " + e.Error + " " + detail
		}
		took := ""
		if e.TookMS > 0 {
			took = (time.Duration(e.TookMS) * time.Millisecond).String()
		}
		att := ""
		if e.Attempt > 0 {
			att = fmt.Sprint(e.Attempt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.At.Local().Format("15:04:05.000"), e.Kind, step, att, took, oneLine(detail, 120))
	}
	tw.Flush()
	return ExitOK
}

func (c runbookCmd) post(ctx context.Context, what, path string, req client.ActionRequest) int {
	req.By = c.by
	out, err := client.New(c.agentURL).RunbookAction(ctx, path, req)
	if err != nil {
		return c.fail(what, err)
	}
	if id, ok := out["id"].(string); ok && what == "trigger" {
		fmt.Fprintf(c.stdout, "%s\t%v\t%v\n", id, out["state"], out["error"])
		return ExitOK
	}
	b, _ := json.Marshal(out)
	fmt.Fprintln(c.stdout, string(b))
	return ExitOK
}

// parseLabels reads name=value arguments.
func parseLabels(args []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want name=value", a)
		}
		out[k] = v
	}
	return out, nil
}
