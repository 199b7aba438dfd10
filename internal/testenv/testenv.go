// Package testenv is how a test says it needs a real part of the machine:
// a database server, a binary such as promtool or etcd, root, raw sockets.
// On a developer's laptop without it the test is skipped with one line
// saying what it needs and why; when VIGIL_REQUIRE_INTEGRATION is set (as
// .ci/run does) the same line fails the test, since a missing service in
// CI is a broken setup, not a reason to pass.
//
// Every skip message reads "needs WHAT: WHY". When VIGIL_TEST_SKIPS names
// a file, each skip also appends "PACKAGE TEST: needs WHAT: WHY" to it;
// `make test` prints that file at the end, so a run without services
// lists what it did not test. Only _test.go files import this package.
package testenv

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Required reports whether missing parts fail tests instead of skipping
// them (VIGIL_REQUIRE_INTEGRATION set to anything).
func Required() bool { return os.Getenv("VIGIL_REQUIRE_INTEGRATION") != "" }

// Missing ends the test because what is not available here, for the
// reason in detail: a skip on a laptop, a failure when Required.
func Missing(t testing.TB, what, detail string) {
	t.Helper()
	msg := "needs " + what + ": " + detail
	if Required() {
		t.Fatal(msg + " (VIGIL_REQUIRE_INTEGRATION is set, so this fails instead of skipping)")
	}
	record(t, msg)
	t.Skip(msg)
}

// Missingf is Missing with a formatted detail.
func Missingf(t testing.TB, what, format string, args ...any) {
	t.Helper()
	Missing(t, what, fmt.Sprintf(format, args...))
}

// SkipOptional skips the test, or the rest of it, for something CI does
// not provide either (a systemd tool, a server setting): listed with the
// other skips, never a failure.
func SkipOptional(t testing.TB, what, detail string) {
	t.Helper()
	msg := "needs " + what + ": " + detail
	record(t, msg)
	t.Skip(msg)
}

// NeedBinary returns the path of the named program, or ends the test as
// Missing; pkg is the Debian package that provides it.
func NeedBinary(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name, "not installed (apt-get install "+pkg+")")
	}
	return p
}

// NeedService ends the test as Missing unless a TCP connection to addr
// succeeds within a second; name says what should listen there.
func NeedService(t testing.TB, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		Missingf(t, name, "not reachable on %s (%v); .ci/run starts it", addr, err)
		return
	}
	c.Close()
}

// NeedRoot ends the test as Missing unless it runs as root; why says what
// root is needed for.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root", why)
	}
}

// record appends the skip to the file named by VIGIL_TEST_SKIPS. Lines
// are written with one append each, so the test binaries go test runs
// side by side do not interleave them.
func record(t testing.TB, msg string) {
	path := os.Getenv("VIGIL_TEST_SKIPS")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Logf("testenv: cannot record the skip in %s: %v", path, err)
		return
	}
	defer f.Close()
	line := packagePath() + " " + t.Name() + ": " + strings.ReplaceAll(msg, "\n", " ") + "\n"
	if _, err := f.WriteString(line); err != nil {
		t.Logf("testenv: cannot record the skip in %s: %v", path, err)
	}
}

// packagePath is the test's package directory relative to the module root
// (go test runs a package's tests in its directory).
func packagePath() string {
	wd, err := os.Getwd()
	if err != nil {
		return "?"
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if rel, err := filepath.Rel(dir, wd); err == nil && rel != "." {
				return "./" + filepath.ToSlash(rel)
			}
			return wd
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return wd
		}
		dir = parent
	}
}

// Eventually polls cond every few milliseconds until it holds, and fails
// the test naming what it waited for once timeout has passed: the way a
// test waits for something to happen, instead of sleeping.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// PositiveInt reads a positive integer setting of a benchmark from the
// environment variable name, def when it is unset.
func PositiveInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// OKServer serves 200 "ok" on every path from the test process, for
// benchmarks whose checks need a target, and returns its address.
func OKServer(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}
