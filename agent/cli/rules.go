package cli

import (
	"io"

	"github.com/vigil-project/vigil/rules"
)

func checkRules(stdout, stderr io.Writer, files []string) int {
	if !rules.CheckFiles(stdout, stderr, files...) {
		return ExitFailed
	}
	return ExitOK
}
