// Package all links every check family into the binary: importing it runs
// their init() registrations. Add a blank import here for a new family.
package all

import (
	_ "github.com/vigil-project/vigil/probes/database"
	_ "github.com/vigil-project/vigil/probes/host"
	_ "github.com/vigil-project/vigil/probes/invoice"
	_ "github.com/vigil-project/vigil/probes/logscan"
	_ "github.com/vigil-project/vigil/probes/network"
)
