//go:build !linux

package runbook

import "os/exec"

// runInGroup runs cmd; process groups that die with the agent are
// implemented on Linux only.
func runInGroup(cmd *exec.Cmd) error { return cmd.Run() }

// killOrphans finds nothing outside Linux (no /proc environ to read).
func killOrphans(string) (int, error) { return 0, nil }
