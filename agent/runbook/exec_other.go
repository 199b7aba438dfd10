//go:build !linux

package runbook

import (
	"errors"
	"os/exec"
)

// runInGroup runs cmd; process groups that die with the agent, and
// records of them, are implemented on Linux only.
func runInGroup(cmd *exec.Cmd, _ func(Process) error) error { return cmd.Run() }

func sigkill(int) error { return errors.ErrUnsupported }

// stop finds nothing outside Linux (no /proc to read).
func (reaper) stop(string, []Process) (int, error) { return 0, nil }
