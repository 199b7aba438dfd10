// Command vigil is a health-probe and observability agent for e-invoice
// platforms: see README.md and `vigil --help`.
package main

import (
	"os"

	"github.com/vigil-project/vigil/agent/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr))
}
