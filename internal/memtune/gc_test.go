package memtune

import (
	"runtime/debug"
	"testing"
)

func TestGCPercent(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ checks, want int }{{0, 50}, {10, 50}, {999, 50}, {1000, 25}, {10000, 25}} {
		if got := GCPercent(tt.checks); got != tt.want {
			t.Errorf("GCPercent(%d) = %d, want %d", tt.checks, got, tt.want)
		}
	}
}

// GOGC in the environment wins over the tuning.
func TestTuneGCLeavesGOGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	t.Setenv("GOGC", "")
	TuneGC(5000)
	if got := debug.SetGCPercent(100); got != 25 {
		t.Errorf("GOGC unset: percent %d after TuneGC(5000), want 25", got)
	}
	t.Setenv("GOGC", "100")
	TuneGC(5000)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=100 in the environment: percent %d after TuneGC, want 100", got)
	}
}
