package memtune

import "testing"

// TestReleaseStartupPages drops this test binary's code pages: the call
// must succeed on Linux 5.4+ and resident memory must not grow.
func TestReleaseStartupPages(t *testing.T) {
	before, after, err := ReleaseStartupPages()
	if err != nil {
		t.Fatalf("ReleaseStartupPages: %v", err)
	}
	if before <= 0 || after <= 0 || after > before {
		t.Errorf("RSS before %d, after %d", before, after)
	}
	t.Logf("RSS %d KiB -> %d KiB", before/1024, after/1024)
}
