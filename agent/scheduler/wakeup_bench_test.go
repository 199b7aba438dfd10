//go:build peerbench

package scheduler_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestWakeupCost measures why the scheduler puts runs on a grid
// (Options.Granularity): the CPU a process spends per fresh loopback HTTP
// request (dial, write a GET, read the response, close) when the requests
// come one at a time, evenly spread, against the same number started in
// groups. The target server runs in a child process, so only the client's
// CPU is counted (getrusage of this process). Run it with `make
// bench-wakeup`; VIGIL_WAKEUP_WINDOW sets the window per row (default 30s).
func TestWakeupCost(t *testing.T) {
	if addr := os.Getenv("VIGIL_WAKEUP_SERVE"); addr != "" {
		serveOK(addr) // the child: never returns
	}
	window := 30 * time.Second
	if v := os.Getenv("VIGIL_WAKEUP_WINDOW"); v != "" {
		var err error
		if window, err = time.ParseDuration(v); err != nil {
			t.Fatalf("VIGIL_WAKEUP_WINDOW: %v", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := exec.Command(os.Args[0], "-test.run", "^TestWakeupCost$")
	srv.Env = append(os.Environ(), "VIGIL_WAKEUP_SERVE="+addr)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the target server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}

	rows := []struct {
		perSecond, together int
	}{
		{167, 1}, {167, 4}, {167, 17}, {167, 167},
		{17, 1}, {17, 17},
	}
	var lines []string
	for _, r := range rows {
		runs, cpu, failed := drive(addr, r.perSecond, r.together, window)
		if failed > 0 {
			t.Errorf("%d/s in groups of %d: %d of %d requests failed", r.perSecond, r.together, failed, runs)
		}
		lines = append(lines, fmt.Sprintf("| %d | %d, every %s | %d | %.3f |", r.perSecond, r.together,
			(time.Second*time.Duration(r.together)/time.Duration(r.perSecond)).Round(time.Millisecond), runs, 1000*cpu.Seconds()/float64(max(runs, 1))))
	}
	t.Logf("fresh loopback HTTP requests, client CPU per request (window %s per row):\n%s\n%s", window,
		"| requests per second | started together | requests | client CPU ms per request |\n|---:|---|---:|---:|",
		strings.Join(lines, "\n"))
}

// drive starts perSecond requests a second, together at a time, for
// window, and returns how many ran, the process CPU they took and how many
// failed.
func drive(addr string, perSecond, together int, window time.Duration) (runs int, cpu time.Duration, failed int) {
	every := time.Second * time.Duration(together) / time.Duration(perSecond)
	var wg sync.WaitGroup
	var mu sync.Mutex
	tick := time.NewTicker(every)
	defer tick.Stop()
	// A second of warm-up outside the measurement.
	start := time.Now()
	var c0 time.Duration
	measuring := false
	for now := range tick.C {
		if !measuring && now.Sub(start) >= time.Second {
			wg.Wait()
			measuring, c0, start = true, rusage(), now
		}
		if measuring && now.Sub(start) >= window {
			break
		}
		for range together {
			if measuring {
				runs++
			}
			wg.Go(func() {
				if err := get(addr); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return runs, rusage() - c0, failed
}

func get(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", addr); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// rusage is this process's user and system CPU so far.
func rusage() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func serveOK(addr string) {
	http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	os.Exit(1)
}
