package memtune

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestHeapTrimmer: a quiet spell after check runs trims, and so does the
// end of a page render while check runs keep coming (at thousands of
// checks they never stop).
func TestHeapTrimmer(t *testing.T) {
	for _, tt := range []struct {
		name  string
		burst bool // BurstDone first, then Kick every few ms until the trim
	}{
		{"quiet after runs", false},
		{"burst during runs", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var freed, pagedOut atomic.Int32
			tr := &HeapTrimmer{free: func() { freed.Add(1) }, pageOut: func() { pagedOut.Add(1) }}
			defer tr.Stop()
			if tt.burst {
				tr.BurstDone()
			}
			tr.Kick()
			deadline := time.Now().Add(10 * heapTrimDelay)
			for freed.Load() == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("no trim within %v", 10*heapTrimDelay)
				}
				time.Sleep(5 * time.Millisecond)
				if tt.burst {
					tr.Kick()
				}
			}
			// Code pages go only after a burst (a page render): check
			// runs use theirs again at once.
			want := int32(0)
			if tt.burst {
				want = 1
			}
			if got := pagedOut.Load(); got != want {
				t.Errorf("code pages released %d times after the trim, want %d", got, want)
			}
		})
	}
}
