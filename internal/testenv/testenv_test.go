package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTB records what Missing does instead of ending a real test; its
// Skip and Fatal stop the call as the real ones stop the test.
type fakeTB struct {
	testing.TB
	name           string
	skipped, fatal string
	logs           []string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Name() string      { return f.name }
func (f *fakeTB) Skip(args ...any)  { f.skipped = args[0].(string); panic(stopped{}) }
func (f *fakeTB) Fatal(args ...any) { f.fatal = args[0].(string); panic(stopped{}) }

type stopped struct{}

// call runs fn as a test body would run, stopping at Skip or Fatal.
func call(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopped); !ok {
				panic(r)
			}
		}
	}()
	fn()
}
func (f *fakeTB) Logf(format string, _ ...any) { f.logs = append(f.logs, format) }

func TestMissingSkipsAndRecords(t *testing.T) {
	skips := filepath.Join(t.TempDir(), "skips.txt")
	t.Setenv("VIGIL_REQUIRE_INTEGRATION", "")
	t.Setenv("VIGIL_TEST_SKIPS", skips)
	f := &fakeTB{name: "TestEtcd"}
	call(func() { Missing(f, "etcd", "not installed (apt-get install etcd-server)") })
	if f.fatal != "" || f.skipped != "needs etcd: not installed (apt-get install etcd-server)" {
		t.Errorf("skipped %q, failed %q", f.skipped, f.fatal)
	}
	call(func() { SkipOptional(&fakeTB{name: "TestUnit"}, "systemd-analyze", "not installed") })
	b, err := os.ReadFile(skips)
	if err != nil {
		t.Fatal(err)
	}
	want := "./internal/testenv TestEtcd: needs etcd: not installed (apt-get install etcd-server)\n" +
		"./internal/testenv TestUnit: needs systemd-analyze: not installed\n"
	if string(b) != want {
		t.Errorf("skip list:\n%s\nwant:\n%s", b, want)
	}
}

func TestMissingFailsWhenRequired(t *testing.T) {
	skips := filepath.Join(t.TempDir(), "skips.txt")
	t.Setenv("VIGIL_REQUIRE_INTEGRATION", "1")
	t.Setenv("VIGIL_TEST_SKIPS", skips)
	f := &fakeTB{name: "TestPromtool"}
	call(func() { NeedBinary(f, "vigil-no-such-binary", "nothing") })
	if f.skipped != "" || !strings.HasPrefix(f.fatal, "needs vigil-no-such-binary: not installed (apt-get install nothing)") {
		t.Errorf("skipped %q, failed %q", f.skipped, f.fatal)
	}
	if _, err := os.Stat(skips); !os.IsNotExist(err) {
		t.Errorf("a failure was recorded as a skip: %v", err)
	}
	// What is there passes.
	f = &fakeTB{name: "TestGo"}
	call(func() { NeedBinary(f, "sh", "dash") })
	if f.skipped != "" || f.fatal != "" {
		t.Errorf("sh: skipped %q, failed %q", f.skipped, f.fatal)
	}
}
