package cli_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/testenv"
)

// smallDisk mounts a tmpfs of size on a new directory (needs root), so a
// test can fill the disk under the agent's store.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		testenv.Missingf(t, "root", "cannot mount a %s tmpfs: %v %s", size, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// The last partial block too.
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
}

func readyStatus(t *testing.T, a *agentProc) (int, string) {
	t.Helper()
	resp, err := http.Get(a.url + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestFullDiskStillPages: the store sits on a 2 MiB tmpfs that is filled
// while the agent runs. Writes fail and are counted, /-/ready says why,
// and both the target's alert and the shipped AgentStoreWriteFailing rule
// still page, from memory. Freeing the space makes the agent ready again.
func TestFullDiskStillPages(t *testing.T) {
	t.Parallel()
	disk := smallDisk(t, "2m")
	dir := t.TempDir()
	rcv := newReceiver(t)
	target, healthy := flipper(t)
	healthy.Store(true)
	shipped, err := filepath.Abs("../../examples/rules/vigil.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	writeConfig(t, dir, "rules.yml", pagingRules)
	cfg := pagingConfig(target.URL, oncallRoute(rcv.srv.URL))
	cfg = strings.Replace(cfg, "rule_files: [rules.yml]", fmt.Sprintf("rule_files: [rules.yml, %q]", shipped), 1)
	cfgPath := writeConfig(t, dir, "vigil.yml", cfg)
	a := startAgent(t, "--config.file", cfgPath, "--storage.path", filepath.Join(disk, "vigil.db"))
	a.waitMetric(t, `vigil_check_success\{check="target",type="http"\} 1`)

	fill(t, filepath.Join(disk, "filler"))
	// Check results keep coming every second; the history writes fail
	// once SQLite needs a page it cannot get.
	a.waitMetric(t, `vigil_store_write_errors_total\{op="history"\} [1-9]`)
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := readyStatus(t, a)
		if code == http.StatusServiceUnavailable && strings.Contains(body, "store writes failing") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/-/ready with a full store: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	healthy.Store(false)
	waitAlert := func(name string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			for _, p := range rcv.payloads() {
				for _, al := range p.Alerts {
					if al.Labels["alertname"] == name && al.Status == "firing" {
						return
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no %s page with the disk full; got %+v\nmetrics: %s", name, rcv.payloads(), a.getAny(t, "/metrics"))
	}
	waitAlert("TargetDown")
	waitAlert("AgentStoreWriteFailing")
	a.waitMetric(t, `vigil_notify_unsaved_total [1-9]`)

	if err := os.Remove(filepath.Join(disk, "filler")); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		code, body := readyStatus(t, a)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/-/ready after freeing space: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.waitMetric(t, `vigil_store_write_failing 0`)
}

// TestDamagedStoreCommands: `vigil run` refuses a damaged store and names
// the recovery; `vigil store check` says it is damaged; `vigil store
// recover` moves it aside and the agent starts on the new store.
func TestDamagedStoreCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "vigil.db")
	if err := os.WriteFile(db, []byte(strings.Repeat("not a database\n", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, "vigil.yml", goodConfig)
	_, stderr, code := run(t, "run", "--config.file", cfg, "--storage.path", db, "--web.listen-address", freePort(t))
	if code != 1 || !strings.Contains(stderr, "vigil store recover --storage.path="+db) {
		t.Fatalf("run on a damaged store: exit %d\n%s", code, stderr)
	}
	stdout, _, code := run(t, "store", "check", "--storage.path", db)
	if code != 1 || !strings.Contains(stdout, "is damaged") {
		t.Errorf("store check: exit %d\n%s", code, stdout)
	}
	stdout, stderr, code = run(t, "store", "recover", "--storage.path", db)
	if code != 0 || !strings.Contains(stdout, "damaged store moved to "+db+".damaged-") {
		t.Fatalf("store recover: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, _, code = run(t, "store", "check", "--storage.path", db)
	if code != 0 || !strings.Contains(stdout, ": ok") {
		t.Errorf("store check after recover: exit %d\n%s", code, stdout)
	}
	a := startAgent(t, "--config.file", cfg, "--storage.path", db)
	a.waitMetric(t, `vigil_check_success\{check="host",type="host"\} 1`)
}
