// Package rules will hold the in-agent alert rule engine: Prometheus rule
// files evaluated with the PromQL engine over the agent's own series, and
// the alert state machine. The agent's /metrics output is its input
// (DESIGN.md §2), so every series name it uses is listed in README.md.
package rules
