package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// agentClient talks to a running agent's API.
type agentClient struct {
	base       string // without credentials: it appears in errors
	user, pass string
	http       *http.Client
}

// newAgentClient takes credentials from the URL (https://user:pass@host)
// or from VIGIL_AGENT_USER and VIGIL_AGENT_PASSWORD, which keep the
// password out of the process list.
func newAgentClient(base string) *agentClient {
	c := &agentClient{base: strings.TrimSuffix(base, "/"), http: &http.Client{Timeout: 30 * time.Second}}
	if u, err := url.Parse(c.base); err == nil && u.User != nil {
		c.user = u.User.Username()
		c.pass, _ = u.User.Password()
		u.User = nil
		c.base = u.String()
	}
	if c.user == "" {
		c.user, c.pass = os.Getenv("VIGIL_AGENT_USER"), os.Getenv("VIGIL_AGENT_PASSWORD")
	}
	return c
}

// do sends a request and decodes a JSON answer into out; API errors come
// back as {"error": "..."}.
func (c *agentClient) do(ctx context.Context, method, path string, body, out any) error {
	data, err := c.send(ctx, method, path, body)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(data, out)
}

// raw GETs a path and returns the body as it is.
func (c *agentClient) raw(ctx context.Context, path string) ([]byte, error) {
	return c.send(ctx, http.MethodGet, path, nil)
}

func (c *agentClient) send(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode == http.StatusUnauthorized {
		if c.user == "" {
			return nil, fmt.Errorf("agent at %s wants a user: set VIGIL_AGENT_USER and VIGIL_AGENT_PASSWORD", c.base)
		}
		return nil, fmt.Errorf("agent at %s refused user %q: wrong password or unknown user", c.base, c.user)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s", e.Error)
		}
		return nil, fmt.Errorf("agent answered %s", resp.Status)
	}
	return data, nil
}

type silenceView struct {
	ID        string    `json:"id"`
	Matchers  []string  `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	Status    string    `json:"status"`
}

func silenceAdd(ctx context.Context, stdout, stderr io.Writer, agentURL string, matchers []string, duration time.Duration, author, comment string) int {
	var s silenceView
	err := newAgentClient(agentURL).do(ctx, http.MethodPost, "/api/v1/silences", map[string]any{
		"matchers": matchers, "duration": duration.String(), "createdBy": author, "comment": comment,
	}, &s)
	if err != nil {
		fmt.Fprintf(stderr, "vigil silence add: %v\n", err)
		return ExitFailed
	}
	fmt.Fprintf(stdout, "%s\tsilences %s until %s\n", s.ID, strings.Join(s.Matchers, ", "), s.EndsAt.Local().Format(time.RFC3339))
	return ExitOK
}

func silenceList(ctx context.Context, stdout, stderr io.Writer, agentURL string, all bool) int {
	var resp struct{ Silences []silenceView }
	if err := newAgentClient(agentURL).do(ctx, http.MethodGet, "/api/v1/silences", nil, &resp); err != nil {
		fmt.Fprintf(stderr, "vigil silence list: %v\n", err)
		return ExitFailed
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tMATCHERS\tSTARTS\tENDS\tCREATED BY\tCOMMENT")
	for _, s := range resp.Silences {
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
		if err := newAgentClient(agentURL).do(ctx, http.MethodDelete, "/api/v1/silences/"+id, nil, nil); err != nil {
			fmt.Fprintf(stderr, "vigil silence expire %s: %v\n", id, err)
			code = ExitFailed
			continue
		}
		fmt.Fprintf(stdout, "%s\texpired\n", id)
	}
	return code
}
