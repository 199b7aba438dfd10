package network

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/probes"
)

// TestICMPHelper is the child of TestICMPSocketFallback: it pings
// 127.0.0.1 inside a namespace without CAP_NET_RAW and prints the result.
func TestICMPHelper(t *testing.T) {
	if os.Getenv("VIGIL_ICMP_HELPER") == "" {
		t.Skip("helper process for TestICMPSocketFallback")
	}
	r := probeICMP(t, newICMPConfig("127.0.0.1"), 3*time.Second)
	b, _ := json.Marshal(map[string]string{"reason": string(r.Reason), "message": r.Message})
	fmt.Printf("RESULT %s\n", b)
}

// TestICMPSocketFallback drops CAP_NET_RAW (setpriv) and runs the probe in a
// fresh network namespace, once with unprivileged ping sockets allowed by
// net.ipv4.ping_group_range (per namespace) and once without.
func TestICMPSocketFallback(t *testing.T) {
	requireNetns(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	ns := fmt.Sprintf("vgp%d", os.Getpid()%10000)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	run := func(args ...string) {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	run("ip", "link", "set", "lo", "up")
	for _, tt := range []struct {
		groups, reason, message string
	}{
		{"0 2147483647", "", ""},
		{"1 0", string(probes.ReasonError), "CAP_NET_RAW"},
	} {
		t.Run("ping_group_range="+tt.groups, func(t *testing.T) {
			run("sysctl", "-qw", "net.ipv4.ping_group_range="+tt.groups)
			cmd := exec.CommandContext(context.Background(), "ip", "netns", "exec", ns,
				"setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", "--",
				os.Args[0], "-test.run=^TestICMPHelper$", "-test.v")
			cmd.Env = append(os.Environ(), "VIGIL_ICMP_HELPER=1")
			out, _ := cmd.CombinedOutput()
			_, line, ok := strings.Cut(string(out), "RESULT ")
			if !ok {
				t.Fatalf("no result from the helper:\n%s", out)
			}
			var got map[string]string
			json.Unmarshal([]byte(strings.SplitN(line, "\n", 2)[0]), &got)
			if got["reason"] != tt.reason || !strings.Contains(got["message"], tt.message) {
				t.Errorf("got %v, want reason %q with %q", got, tt.reason, tt.message)
			}
			if tt.message != "" && !strings.Contains(got["message"], "ping_group_range") {
				t.Errorf("the error should name both fixes: %s", got["message"])
			}
		})
	}
}
