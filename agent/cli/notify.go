package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/store"
)

// notifyTest sends a test page and prints each integration's outcome.
func notifyTest(ctx context.Context, stdout, stderr io.Writer, agentURL, receiver, by string, wait time.Duration) int {
	if by == "" {
		by = "unknown"
	}
	// The agent answers after the wait at the latest; allow for the trip.
	ctx, cancel := context.WithTimeout(ctx, wait+15*time.Second)
	defer cancel()
	res, err := client.New(agentURL).NotifyTest(ctx, client.NotifyTestRequest{Receiver: receiver, By: by, Wait: wait.String()})
	if err != nil {
		fmt.Fprintf(stderr, "vigil notify test: %v\n", err)
		return ExitFailed
	}
	code := ExitOK
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tOUTCOME\tATTEMPTS\tTOOK\tERROR")
	for _, n := range res.Notifications {
		var outcome string
		took := "-"
		switch n.State {
		case store.OutboxSent:
			outcome = "delivered"
			took = n.DoneAt.Sub(n.CreatedAt).Round(time.Millisecond).String()
		case store.OutboxDead:
			outcome, code = "failed", ExitFailed
		default:
			outcome, code = "still retrying", ExitFailed
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", n.Target, outcome, n.Attempts, took, n.LastError)
	}
	tw.Flush()
	return code
}
