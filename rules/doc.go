// Package rules evaluates Prometheus rule files inside the agent: the agent
// scrapes its own /metrics into an in-memory sample store (Prometheus XOR
// chunks), the Prometheus PromQL engine runs recording and alerting rules
// over it, and an alert state machine decides what fires. The store also
// answers the Prometheus query API, so Grafana can use an agent as a data
// source.
package rules
