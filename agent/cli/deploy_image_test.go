package cli_test

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/testenv"
)

// needDocker ends the test as Missing unless the docker client is
// installed and its engine answers (.ci/run installs docker.io and starts
// dockerd).
func needDocker(t *testing.T) string {
	t.Helper()
	docker := testenv.NeedBinary(t, "docker", "docker.io")
	if out, err := exec.Command(docker, "info").CombinedOutput(); err != nil {
		testenv.Missingf(t, "a running Docker engine", "docker info: %v: %s", err, lastLine(out))
	}
	return docker
}

// makeMu keeps the make targets of these tests apart: each rebuilds
// bin/vigil, which the other may be copying into an image or a package.
var makeMu sync.Mutex

// makeTarget runs `make TARGET` at the repository's root.
func makeTarget(t *testing.T, root, target string) {
	t.Helper()
	makeMu.Lock()
	defer makeMu.Unlock()
	if out, err := exec.Command("make", "-C", root, target).CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", target, err, out)
	}
}

var (
	imageOnce sync.Once
	imageErr  error
	imageOut  []byte
)

// needImage builds the image with `make image` once for the tests that
// run it, and returns the docker client and the image's name.
func needImage(t *testing.T) (docker, image string) {
	t.Helper()
	docker = needDocker(t)
	imageOnce.Do(func() {
		makeMu.Lock()
		defer makeMu.Unlock()
		imageOut, imageErr = exec.Command("make", "-C", "../..", "image").CombinedOutput()
	})
	if imageErr != nil {
		t.Fatalf("make image: %v\n%s", imageErr, imageOut)
	}
	return docker, "vigil:latest"
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// TestDeployImage builds the container image with `make image` (the static
// binary in FROM scratch), then runs it the two ways a user does:
// `vigil once` with the demo config against the demo platform on the
// host network, every check passing, and `vigil run` with the config baked
// into the image, as its non-root user with the store in /data, answering
// /-/ready and /metrics.
func TestDeployImage(t *testing.T) {
	t.Parallel()
	docker, image := needImage(t)
	root, _ := filepath.Abs("../..")
	if out, err := exec.Command(docker, "run", "--rm", "--network", "none", image, "version").CombinedOutput(); err != nil ||
		!strings.HasPrefix(string(out), "vigil, version") {
		t.Fatalf("vigil version in the image: %v\n%s", err, out)
	}

	t.Run("once", func(t *testing.T) {
		dir := t.TempDir()
		base := demoPorts(t)
		demo := exec.Command(demoBin, "--log.file", filepath.Join(dir, "invoice.log"), "demo", "--base-port", strconv.Itoa(base), "--data.dir", filepath.Join(dir, "demo"))
		demo.Stderr = io.Discard
		if err := demo.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { demo.Process.Kill(); demo.Wait() })
		testenv.Eventually(t, 30*time.Second, "the demo gateway", func() bool {
			c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(base))
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		cfg := demoConfig(t, dir, base)
		cfg = strings.ReplaceAll(cfg, "data/demo/", filepath.Join(dir, "demo")+"/")
		// A busy CI machine is not what this test is about.
		cfg = strings.ReplaceAll(cfg, "cpu_max: 0.9 ", "cpu_max: 1 ")
		writeConfig(t, dir, "vigil.yml", cfg)
		examples := filepath.Join(root, "examples")
		// The sqlite canary writes into the demo's database, which belongs
		// to whoever runs the test: the container runs as them.
		user := strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid())
		out, err := exec.Command(docker, "run", "--rm", "--network", "host", "--user", user,
			"-v", dir+":"+dir, "-v", examples+":"+examples+":ro", image,
			"once", "--config.file", filepath.Join(dir, "vigil.yml")).CombinedOutput()
		if err != nil {
			t.Fatalf("vigil once in the image: %v\n%s", err, out)
		}
		for _, c := range []string{"invoice_qr", "invoice_sync_primary", "invoice-db", "tax-upstream", "invoice-log"} {
			if !strings.Contains(string(out), "\n"+c+" ") {
				t.Errorf("vigil once ran no %s check:\n%s", c, out)
			}
		}
	})

	t.Run("run", func(t *testing.T) {
		name := "vigil-test-" + strconv.Itoa(os.Getpid())
		addr := freePort(t)
		// The image's own command and config, the listen address moved off
		// :9877 (the host network is shared with whatever else runs here).
		out, err := exec.Command(docker, "run", "-d", "--name", name, "--network", "host", image,
			"run", "--config.file=/etc/vigil/vigil.yml", "--storage.path=/data/vigil.db",
			"--web.listen-address="+addr).CombinedOutput()
		if err != nil {
			t.Fatalf("docker run: %v\n%s", err, out)
		}
		t.Cleanup(func() {
			if t.Failed() {
				logs, _ := exec.Command(docker, "logs", name).CombinedOutput()
				t.Logf("container log:\n%s", logs)
			}
			exec.Command(docker, "rm", "-f", name).Run()
		})
		url := "http://" + addr
		get := func(path string) (int, string) {
			resp, err := http.Get(url + path)
			if err != nil {
				return 0, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		testenv.Eventually(t, 30*time.Second, "/-/ready", func() bool { code, _ := get("/-/ready"); return code == 200 })
		// Ran, passing or not (cpu_max 0.9 may fail on a busy machine).
		testenv.Eventually(t, 30*time.Second, "the host check in /metrics", func() bool {
			_, body := get("/metrics")
			return strings.Contains(body, `vigil_check_last_run_timestamp_seconds{check="host",type="host"} `)
		})
		// The store is in the volume, written by the image's user (nobody).
		out, err = exec.Command(docker, "exec", name, "/bin/vigil", "store", "check", "--storage.path=/data/vigil.db").CombinedOutput()
		if err != nil {
			t.Errorf("vigil store check in the container: %v\n%s", err, out)
		}
		out, _ = exec.Command(docker, "inspect", "-f", "{{.Config.User}} {{range $p, $_ := .Config.ExposedPorts}}{{$p}}{{end}} {{range $v, $_ := .Config.Volumes}}{{$v}}{{end}}", name).CombinedOutput()
		if got := strings.TrimSpace(string(out)); got != "65534:65534 9877/tcp /data" {
			t.Errorf("image user, ports, volumes: %q", got)
		}
	})
}
