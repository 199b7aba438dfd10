package probes

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
)

// Config is a family's config section (the value under the check's type key).
// NewConfig returns it with defaults applied; Validate reports every problem,
// as FieldErrors joined with errors.Join so the loader can point at the line.
type Config interface {
	Validate() error
}

// Options are the dependencies a prober may need, passed in at build time.
type Options struct {
	// CheckName is the configured name of the check.
	CheckName string
	Logger    *slog.Logger
	// StateDir is where streaming checks keep their state (the agent's
	// storage directory). Empty means a one-off run (vigil once): nothing
	// is written and no Runner is started, so streaming checks read for
	// themselves in Probe.
	StateDir string
}

// Step is the item of the operations checklist a family's checks answer;
// the status page groups checks by it.
type Step string

// The checklist, in the order the operations documents list it.
const (
	StepHost     Step = "host"     // CPU, memory, disk
	StepDatabase Step = "database" // invoice data stored and read back
	StepInvoice  Step = "invoice"  // an e-invoice with a correct QR code
	StepNetwork  Step = "network"  // reachability of the tax authority
	StepLogs     Step = "logs"     // system and interface-call logs
	StepSync     Step = "sync"     // local invoices against the upstream system
)

// Steps lists the checklist steps in order.
func Steps() []Step {
	return []Step{StepHost, StepDatabase, StepInvoice, StepNetwork, StepLogs, StepSync}
}

// Family is one check type.
type Family struct {
	// Type is the name used in config (`type: host`).
	Type string
	// Step is the checklist item the family's checks belong to.
	Step Step
	// NewConfig returns a pointer to a config struct with defaults applied.
	NewConfig func() Config
	// New builds a prober from a validated config returned by NewConfig.
	New func(cfg Config, opts Options) (Prober, error)
	// Metrics documents every series the family's results and collectors
	// export (the HELP text on /metrics); a test holds the probes' value
	// names to this list.
	Metrics []Metric
}

// Metric documents one metric family a check type exports.
type Metric struct {
	Name string
	Help string
}

var registry = struct {
	sync.RWMutex
	m    map[string]Family
	help map[string]string // Metric.Name → Help, over all families
}{m: map[string]Family{}, help: map[string]string{}}

// Register adds a family. It is meant for init(); a duplicate or incomplete
// registration is a programming error and panics.
func Register(f Family) {
	if f.Type == "" || f.Step == "" || f.NewConfig == nil || f.New == nil {
		panic(fmt.Sprintf("probes: incomplete family registration %q", f.Type))
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[f.Type]; dup {
		panic(fmt.Sprintf("probes: check type %q registered twice", f.Type))
	}
	for _, m := range f.Metrics {
		if m.Help == "" {
			panic(fmt.Sprintf("probes: family %q documents %s without help", f.Type, m.Name))
		}
		if h, dup := registry.help[m.Name]; dup && h != m.Help {
			panic(fmt.Sprintf("probes: %s documented twice with different help", m.Name))
		}
		registry.help[m.Name] = m.Help
	}
	registry.m[f.Type] = f
}

// MetricHelp is the HELP text of a metric a registered family exports.
func MetricHelp(name string) (string, bool) {
	registry.RLock()
	defer registry.RUnlock()
	h, ok := registry.help[name]
	return h, ok
}

// Lookup returns the family registered for a type.
func Lookup(typ string) (Family, bool) {
	registry.RLock()
	defer registry.RUnlock()
	f, ok := registry.m[typ]
	return f, ok
}

// Types lists registered check types, sorted.
func Types() []string {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]string, 0, len(registry.m))
	for t := range registry.m {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
