package paging

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/internal/testenv"
)

// The oracle: the same alert sequences go through vigil's paging pipeline
// and through a real Alertmanager (Debian's prometheus-alertmanager), each
// with webhook receivers run by the test, and the notifications must be the
// same — per receiver and group, in order: firing or resolved, and which
// alerts in which state. Timers are short (group_wait 1s, group_interval
// 2s) and the steps of a scenario are seconds apart, so both flush at the
// same points of the sequence.

// oracleStep is what happens at one point of a scenario.
type oracleStep struct {
	at      time.Duration // after the scenario starts
	alerts  []oracleAlert
	silence []string // matchers of a silence added at this step (for an hour)
}

type oracleAlert struct {
	labels   map[string]string
	resolved bool
	// age is how long before the step the alert started (zero: at the step).
	age time.Duration
}

func fire(lbls ...string) oracleAlert    { return oracleAlert{labels: labelMap(lbls)} }
func resolve(lbls ...string) oracleAlert { return oracleAlert{labels: labelMap(lbls), resolved: true} }

// fireOld is an alert that started age before the step.
func fireOld(age time.Duration, lbls ...string) oracleAlert {
	return oracleAlert{labels: labelMap(lbls), age: age}
}

func labelMap(kv []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// oracleCase is one scenario: the routing config in both dialects (the
// route tree and inhibit rules are the same YAML; receivers differ:
// Alertmanager puts send_resolved on the webhook, vigil on the receiver).
type oracleCase struct {
	name    string
	route   string // route: and inhibit_rules: at the top level, indented for both
	recv    map[string]bool
	steps   []oracleStep
	settled time.Duration // after the last step
	// quietUntil: vigil must send nothing before this time (a maintenance
	// window's end), so the scenario cannot pass by never muting.
	quietUntil time.Time
	// prepare, when set, fills in the case as it starts (wall-clock
	// windows must be computed then, not when the cases are listed).
	prepare func(tc *oracleCase)
}

func TestAlertmanagerOracle(t *testing.T) {
	t.Parallel()
	amBin := testenv.NeedBinary(t, "prometheus-alertmanager", "prometheus-alertmanager")
	timers := "  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\n"
	cases := []oracleCase{
		{
			name:  "grouping by a label",
			route: "route:\n  receiver: oncall\n  group_by: [team]\n" + timers,
			recv:  map[string]bool{"oncall": true},
			steps: []oracleStep{
				{at: 0, alerts: []oracleAlert{fire("alertname", "A", "team", "ops"), fire("alertname", "B", "team", "ops"), fire("alertname", "C", "team", "db")}},
				{at: 4 * time.Second, alerts: []oracleAlert{resolve("alertname", "A", "team", "ops")}},
				{at: 8 * time.Second, alerts: []oracleAlert{resolve("alertname", "B", "team", "ops"), resolve("alertname", "C", "team", "db")}},
			},
		},
		{
			name:  "fire, resolve, fire again, send_resolved false",
			route: "route:\n  receiver: oncall\n  group_by: [alertname]\n" + timers,
			recv:  map[string]bool{"oncall": false},
			steps: []oracleStep{
				{at: 0, alerts: []oracleAlert{fire("alertname", "InvoiceQRFailing")}},
				{at: 4 * time.Second, alerts: []oracleAlert{resolve("alertname", "InvoiceQRFailing")}},
				{at: 8 * time.Second, alerts: []oracleAlert{fire("alertname", "InvoiceQRFailing")}},
			},
		},
		{
			name:  "fire, resolve, fire again, send_resolved true",
			route: "route:\n  receiver: oncall\n  group_by: [alertname]\n" + timers,
			recv:  map[string]bool{"oncall": true},
			steps: []oracleStep{
				{at: 0, alerts: []oracleAlert{fire("alertname", "InvoiceQRFailing")}},
				{at: 4 * time.Second, alerts: []oracleAlert{resolve("alertname", "InvoiceQRFailing")}},
				{at: 8 * time.Second, alerts: []oracleAlert{fire("alertname", "InvoiceQRFailing")}},
			},
		},
		{
			name:  "one alert of a group resolves, send_resolved false",
			route: "route:\n  receiver: oncall\n  group_by: [team]\n" + timers,
			recv:  map[string]bool{"oncall": false},
			steps: []oracleStep{
				{at: 0, alerts: []oracleAlert{fire("alertname", "A", "team", "ops"), fire("alertname", "B", "team", "ops")}},
				{at: 4 * time.Second, alerts: []oracleAlert{resolve("alertname", "B", "team", "ops")}},
				{at: 8 * time.Second, alerts: []oracleAlert{fire("alertname", "C", "team", "ops")}},
			},
		},
		{
			name: "nested routes and continue",
			route: "route:\n  receiver: default\n  group_by: [alertname]\n" + timers +
				"  routes:\n" +
				"    - matchers: ['severity=\"critical\"']\n      receiver: pager\n      continue: true\n" +
				"    - matchers: ['team=\"ops\"']\n      receiver: ops\n" +
				"      routes:\n        - matchers: ['service=\"invoice\"']\n          receiver: invoice\n",
			recv: map[string]bool{"default": true, "pager": true, "ops": true, "invoice": true},
			steps: []oracleStep{
				{at: 0, alerts: []oracleAlert{
					fire("alertname", "InvoiceQRFailing", "severity", "critical", "team", "ops", "service", "invoice"),
					fire("alertname", "HostDiskFull", "severity", "warning", "team", "ops"),
					fire("alertname", "DatabaseDown", "severity", "critical", "team", "db"),
					fire("alertname", "Other", "severity", "info"),
				}},
				{at: 4 * time.Second, alerts: []oracleAlert{resolve("alertname", "InvoiceQRFailing", "severity", "critical", "team", "ops", "service", "invoice")}},
			},
		},
		{
			name:  "an alert joins a group: sent at the next group_interval",
			route: "route:\n  receiver: oncall\n  group_by: [team]\n" + timers,
			recv:  map[string]bool{"oncall": true},
			steps: []oracleStep{
				{at: 0, alerts: []oracleAlert{fire("alertname", "A", "team", "ops")}},
				{at: 4 * time.Second, alerts: []oracleAlert{fire("alertname", "B", "team", "ops")}},
			},
		},
		{
			name:  "silences",
			route: "route:\n  receiver: oncall\n  group_by: [alertname]\n" + timers,
			recv:  map[string]bool{"oncall": true},
			steps: []oracleStep{
				{at: 0, silence: []string{`alertname="Muted"`}},
				{at: time.Second, alerts: []oracleAlert{fire("alertname", "Muted", "team", "ops"), fire("alertname", "Loud", "team", "ops")}},
				{at: 5 * time.Second, alerts: []oracleAlert{resolve("alertname", "Muted", "team", "ops"), resolve("alertname", "Loud", "team", "ops")}},
			},
		},
		{
			name: "inhibition: one-sided, two-sided, equal",
			route: "route:\n  receiver: oncall\n  group_by: [alertname, host]\n" + timers +
				"inhibit_rules:\n  - source_matchers: ['alertname=~\"Host.*\"']\n    target_matchers: ['team=\"ops\"']\n    equal: [host]\n",
			recv: map[string]bool{"oncall": true},
			steps: []oracleStep{
				{at: 0, alerts: []oracleAlert{
					fire("alertname", "HostDown", "host", "db1", "team", "ops"),
					fire("alertname", "HostDiskFull", "host", "db1", "team", "ops"),
					fire("alertname", "InvoiceQRFailing", "host", "db1", "team", "ops"),
					fire("alertname", "InvoiceQRFailing", "host", "db2", "team", "ops"),
				}},
			},
		},
		{
			// Flushes at 1s, 3s, 5s, 7s, 9s, 11s: the same alert is paged
			// again at the first flush 5s after the last page (7s), not
			// at any flush before.
			name:    "repeat_interval",
			route:   "route:\n  receiver: oncall\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 5s\n",
			recv:    map[string]bool{"oncall": true},
			steps:   []oracleStep{{at: 0, alerts: []oracleAlert{fire("alertname", "InvoiceQRFailing")}}},
			settled: 8 * time.Second,
		},
		{
			// An alert that started long before it arrives is not held for
			// group_wait (a restart, a late sender): its new group is
			// flushed at once, and an alert joining it half a second later
			// waits for group_interval.
			name:  "an alert older than group_wait is flushed at once",
			route: "route:\n  receiver: oncall\n  group_by: [team]\n  group_wait: 3s\n  group_interval: 2s\n  repeat_interval: 1h\n",
			recv:  map[string]bool{"oncall": true},
			steps: []oracleStep{
				{at: 0, alerts: []oracleAlert{fireOld(time.Minute, "alertname", "A", "team", "ops")}},
				{at: 500 * time.Millisecond, alerts: []oracleAlert{fire("alertname", "B", "team", "ops")}},
			},
		},
	}
	cases = append(cases, maintenanceCases(timers)...)
	cases = append(cases, oracleCase{name: "a maintenance window ends: what still fires is paged", prepare: windowEnds(timers)})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.prepare != nil {
				tc.prepare(&tc)
			}
			if tc.settled == 0 {
				tc.settled = 5 * time.Second
			}
			amRec, vigilRec := newRecorder(t), newRecorder(t)
			amURL := startAlertmanager(t, amBin, amConfig(tc, amRec.srv.URL))
			p := startVigil(t, vigilConfig(tc, vigilRec.srv.URL))
			start := time.Now()
			for _, st := range tc.steps {
				time.Sleep(time.Until(start.Add(st.at)))
				now := time.Now()
				var alerts []notify.Alert
				for _, a := range st.alerts {
					na := notify.Alert{Labels: a.labels, StartsAt: now.Add(-a.age), EndsAt: now.Add(time.Hour), Fingerprint: notify.Fingerprint(a.labels)}
					if a.resolved {
						na.StartsAt, na.EndsAt = now.Add(-time.Minute), now
					}
					alerts = append(alerts, na)
				}
				if st.silence != nil {
					silenceBoth(t, amURL, p, st.silence)
				}
				if len(alerts) > 0 {
					postAlertmanager(t, amURL, alerts)
					p.Alerts(context.Background(), alerts)
				}
			}
			time.Sleep(tc.settled)
			if first := vigilRec.first(); !tc.quietUntil.IsZero() && first.Before(tc.quietUntil) {
				t.Errorf("vigil sent at %s, inside the maintenance window (until %s)", first.Format(time.TimeOnly), tc.quietUntil.Format(time.TimeOnly))
			}
			am, vg := amRec.summary(), vigilRec.summary()
			switch {
			case am != vg:
				t.Errorf("notifications differ\nAlertmanager:\n%s\nvigil:\n%s", am, vg)
			case am == "":
				t.Error("Alertmanager sent nothing: the scenario tests nothing")
			default:
				t.Logf("both sent:\n%s", am)
			}
		})
	}
}

func amConfig(tc oracleCase, base string) string {
	var b strings.Builder
	b.WriteString(tc.route)
	b.WriteString("receivers:\n")
	for _, name := range sortedKeys(tc.recv) {
		fmt.Fprintf(&b, "  - name: %s\n    webhook_configs:\n      - url: %s/%s\n        send_resolved: %v\n", name, base, name, tc.recv[name])
	}
	return b.String()
}

func vigilConfig(tc oracleCase, base string) string {
	var b strings.Builder
	b.WriteString("notify:\n  min_backoff: 100ms\n  max_backoff: 1s\n")
	for _, l := range strings.Split(strings.TrimRight(tc.route, "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
	b.WriteString("  receivers:\n")
	for _, name := range sortedKeys(tc.recv) {
		fmt.Fprintf(&b, "    - name: %s\n      send_resolved: %v\n      webhook_configs:\n        - url: %s/%s\n", name, tc.recv[name], base, name)
	}
	return b.String()
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func startVigil(t *testing.T, cfgYAML string) *Pager {
	t.Helper()
	p, _ := start(t, parseFull(t, cfgYAML), Options{})
	return p
}

// recorder keeps the webhook payloads each receiver got.
type recorder struct {
	srv *httptest.Server

	mu    sync.Mutex
	msgs  []webhookMsg
	times []time.Time
}

// first is when the first notification arrived (zero if none did).
func (r *recorder) first() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.times) == 0 {
		return time.Time{}
	}
	return r.times[0]
}

type webhookMsg struct {
	Receiver    string            `json:"receiver"`
	Status      string            `json:"status"`
	GroupLabels map[string]string `json:"groupLabels"`
	Alerts      []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var m webhookMsg
		if err := json.NewDecoder(req.Body).Decode(&m); err != nil {
			t.Errorf("webhook body: %v", err)
			return
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.times = append(r.times, time.Now())
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// summary is one line per receiver and group, the notifications in order:
// "oncall {alertname=A}: firing[A=firing B=resolved] | resolved[...]".
func (r *recorder) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	byGroup := map[string][]string{}
	for _, m := range r.msgs {
		var as []string
		for _, a := range m.Alerts {
			as = append(as, a.Labels["alertname"]+"/"+a.Labels["host"]+"="+a.Status)
		}
		sort.Strings(as)
		var gl []string
		for k, v := range m.GroupLabels {
			gl = append(gl, k+"="+v)
		}
		sort.Strings(gl)
		key := m.Receiver + " {" + strings.Join(gl, ",") + "}"
		byGroup[key] = append(byGroup[key], m.Status+"["+strings.Join(as, " ")+"]")
	}
	var lines []string
	for k, v := range byGroup {
		lines = append(lines, k+": "+strings.Join(v, " | "))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func startAlertmanager(t *testing.T, bin, cfg string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "alertmanager.yml")
	if err := writeFile(path, cfg); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--config.file", path, "--storage.path", filepath.Join(dir, "data"),
		"--web.listen-address", addr, "--cluster.listen-address=")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", logs.String())
		}
	})
	url := "http://" + addr
	testenv.Eventually(t, 15*time.Second, "Alertmanager ready", func() bool {
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return url
}

func postAlertmanager(t *testing.T, url string, alerts []notify.Alert) {
	t.Helper()
	type amAlert struct {
		Labels   map[string]string `json:"labels"`
		StartsAt time.Time         `json:"startsAt"`
		EndsAt   time.Time         `json:"endsAt"`
	}
	var body []amAlert
	for _, a := range alerts {
		body = append(body, amAlert{Labels: a.Labels, StartsAt: a.StartsAt, EndsAt: a.EndsAt})
	}
	b, _ := json.Marshal(body)
	resp, err := http.Post(url+"/api/v2/alerts", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("Alertmanager refused the alerts: %s %s", resp.Status, msg)
	}
}

func parseFull(t *testing.T, yamlText string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("vigil.yml", []byte(yamlText))
	if err != nil {
		t.Fatalf("%v\n%s", err, yamlText)
	}
	return cfg
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o600) }

// silenceBoth adds the same silence, for an hour, to Alertmanager and to
// vigil.
func silenceBoth(t *testing.T, amURL string, p *Pager, matchers []string) {
	t.Helper()
	now := time.Now()
	type amMatcher struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		IsRegex bool   `json:"isRegex"`
		IsEqual bool   `json:"isEqual"`
	}
	var ms []amMatcher
	parsed, err := route.Matchers(matchers).Parse()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range parsed {
		ms = append(ms, amMatcher{Name: m.Name, Value: m.Value,
			IsRegex: m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp,
			IsEqual: m.Type == labels.MatchEqual || m.Type == labels.MatchRegexp})
	}
	b, _ := json.Marshal(map[string]any{"matchers": ms, "startsAt": now, "endsAt": now.Add(time.Hour), "createdBy": "test", "comment": "oracle"})
	resp, err := http.Post(amURL+"/api/v2/silences", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("Alertmanager refused the silence: %s %s", resp.Status, msg)
	}
	if _, err := p.Silences().Add(context.Background(), route.Silence{Matchers: matchers, StartsAt: now, EndsAt: now.Add(time.Hour),
		CreatedBy: "test", Comment: "oracle"}); err != nil {
		t.Fatal(err)
	}
}

func intervalRoute(team, kind, name string) string {
	return fmt.Sprintf("    - matchers: ['team=\"%s\"']\n      %s_time_intervals: [%s]\n", team, kind, name)
}

// maintenanceCases are the time-interval scenarios with windows that hold
// always or never.
func maintenanceCases(timers string) []oracleCase {
	intervals := "time_intervals:\n" +
		"  - name: always\n    time_intervals: [{weekdays: ['sunday:saturday']}]\n" +
		"  - name: far-future\n    time_intervals: [{years: ['2099']}]\n"
	route := intervalRoute
	return []oracleCase{
		{
			name: "mute_time_intervals and active_time_intervals",
			route: "route:\n  receiver: oncall\n  group_by: [alertname, team]\n" + timers + "  routes:\n" +
				route("tax", "mute", "always") + route("night", "active", "far-future") +
				route("ops", "active", "always") + route("db", "mute", "far-future") + intervals,
			recv: map[string]bool{"oncall": true},
			steps: []oracleStep{
				{at: 0, alerts: []oracleAlert{fire("alertname", "A", "team", "tax"), fire("alertname", "A", "team", "night"),
					fire("alertname", "A", "team", "ops"), fire("alertname", "A", "team", "db")}},
				{at: 4 * time.Second, alerts: []oracleAlert{resolve("alertname", "A", "team", "tax"), resolve("alertname", "A", "team", "ops")}},
			},
		},
	}
}

// windowEnds is a window of wall-clock minutes that ends at the next
// minute boundary at least 10s away: what fired inside it is paged at the
// first flush after it ends, by both, and what resolved inside it never.
func windowEnds(timers string) func(tc *oracleCase) {
	return func(tc *oracleCase) {
		now := time.Now().UTC()
		end := now.Truncate(time.Minute).Add(time.Minute)
		if time.Until(end) < 10*time.Second {
			end = end.Add(time.Minute)
		}
		hhmm := func(t time.Time) string {
			if t.Day() != now.Day() {
				return "24:00"
			}
			return t.Format("15:04")
		}
		tc.route = "route:\n  receiver: oncall\n  group_by: [alertname]\n" + timers + "  routes:\n" + intervalRoute("tax", "mute", "window") +
			fmt.Sprintf("time_intervals:\n  - name: window\n    time_intervals: [{times: [{start_time: '%s', end_time: '%s'}]}]\n", now.Format("15:04"), hhmm(end))
		tc.recv = map[string]bool{"oncall": true}
		tc.steps = []oracleStep{
			{at: 0, alerts: []oracleAlert{fire("alertname", "UpstreamUnreachable", "team", "tax"), fire("alertname", "Blip", "team", "tax")}},
			{at: 2 * time.Second, alerts: []oracleAlert{resolve("alertname", "Blip", "team", "tax")}},
		}
		tc.settled = time.Until(end) + 5*time.Second
		tc.quietUntil = end
	}
}
