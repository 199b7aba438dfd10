package uptime

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/store"
)

// fakeSource answers with fixed counts per window length.
type fakeSource map[time.Duration]map[string]store.Counts

func (f fakeSource) Uptime(_ context.Context, _ time.Time, ws []time.Duration) (map[string][]store.Counts, error) {
	out := map[string][]store.Counts{}
	for i, w := range ws {
		for name, c := range f[w] {
			if out[name] == nil {
				out[name] = make([]store.Counts, len(ws))
			}
			out[name][i] = c
		}
	}
	return out, nil
}

func (fakeSource) Flush(context.Context) error { return nil }

func TestTrackerRefresh(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	day, week, month := Windows[0], Windows[1], Windows[2]
	src := fakeSource{
		day:   {"web": {Runs: 1440, OK: 1440}},
		week:  {"web": {Runs: 10080, OK: 10000}, "weekly": {Runs: 1, OK: 0}},
		month: {"web": {Runs: 43200, OK: 43000}, "weekly": {Runs: 4, OK: 3}},
	}
	var tr Tracker
	if err := tr.Refresh(ctx, src, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	if got, want := tr.Get("web"), [3]store.Counts{{Runs: 1440, OK: 1440}, {Runs: 10080, OK: 10000}, {Runs: 43200, OK: 43000}}; got != want {
		t.Errorf("web = %v, want %v", got, want)
	}
	r, ok := tr.Ratios("weekly")
	if ok[0] || !ok[1] || !ok[2] || r[1] != 0 || r[2] != 0.75 {
		t.Errorf("weekly ratios = %v %v", r, ok)
	}
	// A short refresh updates the 24-hour window only, and keeps the long
	// ones of checks that did not run in the last day.
	src[day]["web"] = store.Counts{Runs: 1440, OK: 1400}
	src[week]["web"] = store.Counts{Runs: 1, OK: 1}
	if err := tr.Refresh(ctx, src, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	if got, want := tr.Get("web"), [3]store.Counts{{Runs: 1440, OK: 1400}, {Runs: 10080, OK: 10000}, {Runs: 43200, OK: 43000}}; got != want {
		t.Errorf("after a short refresh web = %v, want %v", got, want)
	}
	if got := tr.Get("weekly"); got[2].Runs != 4 {
		t.Errorf("after a short refresh weekly = %v, want its 30 days kept", got)
	}
	// A check new since the last long read shows its runs in all windows.
	src[day]["new"] = store.Counts{Runs: 3, OK: 2}
	if err := tr.Refresh(ctx, src, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	if got, want := tr.Get("new"), [3]store.Counts{{Runs: 3, OK: 2}, {Runs: 3, OK: 2}, {Runs: 3, OK: 2}}; got != want {
		t.Errorf("new check = %v, want %v", got, want)
	}
	if got := tr.Get("nosuch"); got != [3]store.Counts{} {
		t.Errorf("unknown check = %v", got)
	}
}
