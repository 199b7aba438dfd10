package agent

import (
	"context"
	"strings"
	"testing"
)

// TestReloadRefusesBadPaging: a paging mistake — a template that cannot
// render, an unknown time zone, a maintenance window that never occurs, a
// route to an unknown receiver — fails the reload with its file and line,
// and the running config stays.
func TestReloadRefusesBadPaging(t *testing.T) {
	const checks = `checks:
  - name: host
    type: host
    host: {cpu_sample: 10ms, cpu_max: 1, memory_max: 1, disk_free_min: 0}
`
	const good = `notify:
  receivers:
    - name: oncall
      webhook_configs: [{url: "http://127.0.0.1:9/hook"}]
  route:
    receiver: oncall
`
	for _, tc := range []struct{ name, notify, want string }{
		{"template that cannot render", `notify:
  receivers:
    - name: oncall
      slack_configs: [{url_file: /dev/null, text: "{{ range .Alerts }}{{ .Firing }}{{ end }}"}]
  route: {receiver: oncall}
`, `:8:45: notify.receivers[0].slack_configs[0].text: cannot render a sample alert group: render body: template: body:1:22: executing "body" at <.Firing>: can't evaluate field Firing`},
		{"unknown time zone", good + `  time_intervals:
    - name: nightly
      time_intervals: [{location: Asia/Shanghia}]
`, `:13:35: notify.time_intervals[0].time_intervals[0].location: unknown time zone Asia/Shanghia`},
		{"window that never occurs", good + `  time_intervals:
    - name: nightly
      time_intervals: [{days_of_month: ['31'], months: [june]}]
`, `:13:24: notify.time_intervals[0].time_intervals[0]: never occurs from now on`},
		{"route to an unknown receiver", good + `    routes:
      - matchers: [severity=page]
        receiver: pagre
`, `:13:9: notify.route.routes[0].receiver: unknown receiver "pagre" (configured: oncall)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newTestAgent(t)
			file := a.state.Config().File
			writeFile(t, file, checks+good)
			ctx := context.Background()
			if err := a.Reload(ctx); err != nil {
				t.Fatalf("good config: %v", err)
			}
			writeFile(t, file, checks+tc.notify)
			err := a.Reload(ctx)
			if err == nil || !strings.Contains(err.Error(), file+tc.want) {
				t.Fatalf("reload error %v, want one with %q", err, tc.want)
			}
			if got := a.state.Config().Notify; len(got.Receivers) != 1 || len(got.Receivers[0].Integrations()) != 1 ||
				got.Receivers[0].Integrations()[0].Kind != "webhook" || len(got.TimeIntervals) != 0 || len(got.Route.Routes) != 0 {
				t.Errorf("the failed reload changed the running config: %+v", got)
			}
		})
	}
}
