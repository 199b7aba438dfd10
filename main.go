// Command vigil is a health-probe and observability agent for e-invoice
// platforms: see README.md and `vigil --help`.
package main

import (
	"os"
	// Time zones (maintenance windows, Asia/Shanghai) resolve on hosts and
	// images without a zoneinfo database.
	_ "time/tzdata"

	"github.com/vigil-project/vigil/agent/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr))
}
