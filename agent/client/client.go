package client

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
	"time"

	"github.com/vigil-project/vigil/agent/drill"
	"github.com/vigil-project/vigil/agent/notify/route"
)

// Client talks to a running agent's API.
type Client struct {
	base       string // without credentials: it appears in errors
	user, pass string
	http       *http.Client
}

// New takes credentials from the URL (https://user:pass@host) or from
// VIGIL_AGENT_USER and VIGIL_AGENT_PASSWORD, which keep the password out
// of the process list.
func New(base string) *Client {
	c := &Client{base: strings.TrimSuffix(base, "/"), http: &http.Client{Timeout: 30 * time.Second}}
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

// Silences lists the agent's silences, expired ones included.
func (c *Client) Silences(ctx context.Context) ([]route.Silence, error) {
	var resp struct{ Silences []route.Silence }
	err := c.do(ctx, http.MethodGet, "/api/v1/silences", nil, &resp)
	return resp.Silences, err
}

// AddSilence creates a silence; the answer carries a warning when it
// matches nothing the agent knows.
func (c *Client) AddSilence(ctx context.Context, req SilenceRequest) (AddedSilence, error) {
	var s AddedSilence
	err := c.do(ctx, http.MethodPost, "/api/v1/silences", req, &s)
	return s, err
}

// ExpireSilence ends a silence now.
func (c *Client) ExpireSilence(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/silences/"+url.PathEscape(id), nil, nil)
}

// Runs lists the newest runbook runs, in a state if one is given.
func (c *Client) Runs(ctx context.Context, state string, limit int) ([]Run, error) {
	var resp struct{ Runs []Run }
	q := url.Values{"limit": {fmt.Sprint(limit)}}
	if state != "" {
		q.Set("state", state)
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/runbooks/runs?"+q.Encode(), nil, &resp)
	return resp.Runs, err
}

// Run is one runbook run with its timeline.
func (c *Client) Run(ctx context.Context, id string) (Run, error) {
	var r Run
	err := c.do(ctx, http.MethodGet, "/api/v1/runbooks/runs/"+url.PathEscape(id), nil, &r)
	return r, err
}

// RunbookAction posts a runbook action (trigger, ack, approve, reject,
// abort, pause, resume) to its path and returns the answer as JSON.
func (c *Client) RunbookAction(ctx context.Context, path string, req ActionRequest) (map[string]any, error) {
	var out map[string]any
	err := c.do(ctx, http.MethodPost, path, req, &out)
	return out, err
}

// Drills lists the loaded drills and the running one.
func (c *Client) Drills(ctx context.Context) (Drills, error) {
	var d Drills
	err := c.do(ctx, http.MethodGet, "/api/v1/drills", nil, &d)
	return d, err
}

// StartDrill starts a drill on the agent.
func (c *Client) StartDrill(ctx context.Context, req DrillStartRequest) (DrillStarted, error) {
	var s DrillStarted
	err := c.do(ctx, http.MethodPost, "/api/v1/drills/run", req, &s)
	return s, err
}

// AbortDrill stops a running drill; the agent runs its rollback.
func (c *Client) AbortDrill(ctx context.Context, id, by string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/drills/runs/"+url.PathEscape(id)+"/abort", ActionRequest{By: by}, nil)
}

// DrillRuns lists the newest drill runs' reports.
func (c *Client) DrillRuns(ctx context.Context, limit int) ([]drill.Report, error) {
	var resp struct{ Runs []drill.Report }
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/drills/runs?limit=%d", limit), nil, &resp)
	return resp.Runs, err
}

// DrillRun is one drill run's report (live while it runs).
func (c *Client) DrillRun(ctx context.Context, id string) (drill.Report, error) {
	var rep drill.Report
	err := c.do(ctx, http.MethodGet, "/api/v1/drills/runs/"+url.PathEscape(id), nil, &rep)
	return rep, err
}

// DrillReport is one drill run's report as the agent renders it: Markdown,
// or JSON as served.
func (c *Client) DrillReport(ctx context.Context, id string, asJSON bool) ([]byte, error) {
	path := "/api/v1/drills/runs/" + url.PathEscape(id)
	if !asJSON {
		path += "?format=markdown"
	}
	return c.send(ctx, http.MethodGet, path, nil)
}

// DrillHistory summarises the measures of finished runs of a drill ("":
// all drills).
func (c *Client) DrillHistory(ctx context.Context, name string) (DrillHistory, error) {
	var h DrillHistory
	err := c.do(ctx, http.MethodGet, "/api/v1/drills/history?drill="+url.QueryEscape(name), nil, &h)
	return h, err
}

// do sends a request and decodes a JSON answer into out.
// NotifyTest sends a test page to a receiver and waits for its outcome.
func (c *Client) NotifyTest(ctx context.Context, req NotifyTestRequest) (NotifyTestResult, error) {
	var out NotifyTestResult
	err := c.do(ctx, http.MethodPost, "/api/v1/notify/test", req, &out)
	return out, err
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	data, err := c.send(ctx, method, path, body)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(data, out)
}

// send makes a call; API errors ({"error": "..."}) come back as errors.
func (c *Client) send(ctx context.Context, method, path string, body any) ([]byte, error) {
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
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s", e.Error)
		}
		return nil, fmt.Errorf("agent answered %s", resp.Status)
	}
	return data, nil
}
