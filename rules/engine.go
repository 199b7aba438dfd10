package rules

import (
	"time"

	"github.com/prometheus/prometheus/promql"
)

// newTestEngine is the engine rule unit tests run on, with promtool's
// lookback and limits.
func newTestEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: 2 * time.Minute, LookbackDelta: 5 * time.Minute})
}
