package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/slo"
	"github.com/vigil-project/vigil/rules"
)

func checkRules(stdout, stderr io.Writer, files []string) int {
	if !rules.CheckFiles(stdout, stderr, files...) {
		return ExitFailed
	}
	return ExitOK
}

// sloRules prints the burn-rate rules of the config's SLOs, as the agent
// evaluates them, for a central Prometheus.
func sloRules(stdout, stderr io.Writer, file string) int {
	cfg, err := config.Load(file)
	if err != nil {
		var cerr config.Errors
		if errors.As(err, &cerr) {
			fmt.Fprintln(stderr, cerr.Error())
			return ExitConfigError
		}
		fmt.Fprintf(stderr, "%s: %v\n", file, err)
		return ExitConfigError
	}
	if len(cfg.SLOs) == 0 {
		fmt.Fprintf(stderr, "%s: no slos: section\n", file)
		return ExitFailed
	}
	text, err := slo.Rules(cfg.SLOs)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitFailed
	}
	stdout.Write(text)
	return ExitOK
}
