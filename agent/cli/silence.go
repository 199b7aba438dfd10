package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-project/vigil/agent/client"
)

func silenceAdd(ctx context.Context, stdout, stderr io.Writer, agentURL string, matchers []string, duration time.Duration, author, comment string) int {
	s, err := client.New(agentURL).AddSilence(ctx, client.SilenceRequest{
		Matchers: matchers, Duration: duration.String(), CreatedBy: author, Comment: comment,
	})
	if err != nil {
		fmt.Fprintf(stderr, "vigil silence add: %v\n", err)
		return ExitFailed
	}
	fmt.Fprintf(stdout, "%s\tsilences %s until %s\n", s.ID, strings.Join(s.Matchers, ", "), s.EndsAt.Local().Format(time.RFC3339))
	if s.Warning != "" {
		fmt.Fprintf(stderr, "vigil silence add: warning: %s\n", s.Warning)
	}
	return ExitOK
}

func silenceList(ctx context.Context, stdout, stderr io.Writer, agentURL string, all bool) int {
	silences, err := client.New(agentURL).Silences(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "vigil silence list: %v\n", err)
		return ExitFailed
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tMATCHERS\tSTARTS\tENDS\tCREATED BY\tCOMMENT")
	for _, s := range silences {
		if s.Status == "expired" && !all {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Status, strings.Join(s.Matchers, ", "),
			s.StartsAt.Local().Format("2006-01-02 15:04"), s.EndsAt.Local().Format("2006-01-02 15:04"), s.CreatedBy, s.Comment)
	}
	tw.Flush()
	return ExitOK
}

func silenceExpire(ctx context.Context, stdout, stderr io.Writer, agentURL string, ids []string) int {
	code := ExitOK
	for _, id := range ids {
		if err := client.New(agentURL).ExpireSilence(ctx, id); err != nil {
			fmt.Fprintf(stderr, "vigil silence expire %s: %v\n", id, err)
			code = ExitFailed
			continue
		}
		fmt.Fprintf(stdout, "%s\texpired\n", id)
	}
	return code
}
