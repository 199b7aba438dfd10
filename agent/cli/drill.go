package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/drill"
)

// drillCmd carries out `vigil drill ...` against a running agent.
type drillCmd struct {
	agentURL string
	by       string
	stdout   io.Writer
	stderr   io.Writer
}

func (c drillCmd) fail(what string, err error) int {
	fmt.Fprintf(c.stderr, "vigil drill %s: %v\n", what, err)
	return ExitFailed
}

func (c drillCmd) client() *client.Client { return client.New(c.agentURL) }

// run starts a drill (a file, or the name of one the agent loaded), shows
// its milestones as they happen and waits for the report. Ctrl-C aborts
// the drill: the agent runs its rollback, and this waits for it.
func (c drillCmd) run(ctx context.Context, fileOrName string) int {
	req := client.DrillStartRequest{By: c.by}
	if data, err := os.ReadFile(fileOrName); err == nil {
		if _, err := drill.Parse(fileOrName, data); err != nil {
			fmt.Fprintln(c.stderr, err)
			return ExitConfigError
		}
		req.Source, req.File = string(data), fileOrName
	} else if strings.ContainsAny(fileOrName, "/.") {
		return c.fail("run", err)
	} else {
		req.Name = fileOrName
	}
	started, err := c.client().StartDrill(context.WithoutCancel(ctx), req)
	if err != nil {
		return c.fail("run", err)
	}
	fmt.Fprintf(c.stdout, "drill %s started: %s (Ctrl-C aborts and rolls back)\n", started.Drill, started.ID)
	shown := map[string]bool{}
	aborted := false
	var rep drill.Report
	for {
		if rep, err = c.client().DrillRun(context.WithoutCancel(ctx), started.ID); err != nil {
			return c.fail("run", err)
		}
		t0 := time.Time{}
		for _, m := range rep.Marks {
			if m.Name == drill.MarkInjected {
				t0 = m.At
			}
		}
		for _, m := range rep.Marks {
			if shown[m.Name] {
				continue
			}
			shown[m.Name] = true
			rel := ""
			if !t0.IsZero() {
				rel = "T+" + m.At.Sub(t0).Round(100*time.Millisecond).String()
			}
			fmt.Fprintf(c.stdout, "%s %-9s %-22s %s\n", m.At.Local().Format("15:04:05"), rel, m.Name, m.Detail)
		}
		if rep.State != drill.StateRunning {
			break
		}
		select {
		case <-ctx.Done():
			if !aborted {
				aborted = true
				fmt.Fprintln(c.stdout, "aborting: the agent runs the rollback…")
				if err := c.client().AbortDrill(context.WithoutCancel(ctx), started.ID, c.by); err != nil {
					fmt.Fprintf(c.stderr, "vigil drill run: abort: %v\n", err)
				}
			}
			time.Sleep(500 * time.Millisecond)
		case <-time.After(500 * time.Millisecond):
		}
	}
	c.summary(rep)
	if rep.State != drill.StatePassed {
		return ExitFailed
	}
	return ExitOK
}

func (c drillCmd) summary(rep drill.Report) {
	fmt.Fprintf(c.stdout, "\nresult: %s", strings.ToUpper(rep.State))
	if rep.Aborted != "" {
		fmt.Fprintf(c.stdout, " (%s)", rep.Aborted)
	}
	fmt.Fprintln(c.stdout)
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, o := range rep.Objectives {
		limit, measured, res := o.Cells()
		fmt.Fprintf(w, "  %s\t≤ %s\t%s\t%s\n", o.Measure, limit, measured, res)
	}
	w.Flush()
	for _, p := range rep.Problems {
		fmt.Fprintf(c.stdout, "  problem: %s\n", p)
	}
	fmt.Fprintf(c.stdout, "report: vigil drill show %s\n", rep.ID)
}

func (c drillCmd) list(ctx context.Context) int {
	resp, err := c.client().Drills(ctx)
	if err != nil {
		return c.fail("list", err)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DRILL\tCHECKS\tDURATION\tFILE")
	for _, d := range resp.Drills {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", d.Name, strings.Join(d.Checks, ","), d.Duration, d.File)
	}
	w.Flush()
	if resp.Active != nil {
		fmt.Fprintf(c.stdout, "running: %s (%s)\n", resp.Active.Drill, resp.Active.ID)
	}
	runs, err := c.client().DrillRuns(ctx, 10)
	if err != nil {
		return c.fail("list", err)
	}
	if len(runs) > 0 {
		fmt.Fprintln(c.stdout, "\nrecent runs:")
		w = tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tDRILL\tSTATE\tSTARTED")
		for _, r := range runs {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.ID, r.Drill, r.State, r.StartedAt.Local().Format(time.DateTime))
		}
		w.Flush()
	}
	return ExitOK
}

func (c drillCmd) show(ctx context.Context, id string, asJSON bool) int {
	body, err := c.client().DrillReport(ctx, id, asJSON)
	if err != nil {
		return c.fail("show", err)
	}
	c.stdout.Write(body)
	return ExitOK
}

func (c drillCmd) history(ctx context.Context, name string) int {
	resp, err := c.client().DrillHistory(ctx, name)
	if err != nil {
		return c.fail("history", err)
	}
	what := "all drills"
	if name != "" {
		what = name
	}
	fmt.Fprintf(c.stdout, "%s: %d finished run(s)\n", what, resp.Runs)
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MEASURE\tRUNS\tP50\tP90\tMAX")
	for _, s := range resp.Measures {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", s.Measure, s.Count, drill.Secs(s.P50), drill.Secs(s.P90), drill.Secs(s.Max))
	}
	w.Flush()
	return ExitOK
}
