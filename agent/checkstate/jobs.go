package checkstate

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/probes"
)

// LoadJobs loads a config file (empty path: the embedded default) and
// builds a scheduler job for every check. stateDir is where streaming
// checks keep state ("" for none).
func LoadJobs(path, stateDir string, log *slog.Logger) (*config.Config, []scheduler.Job, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	jobs, err := Jobs(cfg, stateDir, log)
	if err != nil {
		return nil, nil, err
	}
	return cfg, jobs, nil
}

// Jobs builds the probers of a validated config.
func Jobs(cfg *config.Config, stateDir string, log *slog.Logger) ([]scheduler.Job, error) {
	jobs := make([]scheduler.Job, 0, len(cfg.Checks))
	for _, c := range cfg.Checks {
		family, ok := probes.Lookup(c.Type)
		if !ok {
			// Validation already rejected unknown types.
			return nil, fmt.Errorf("check %q: unknown type %q", c.Name, c.Type)
		}
		p, err := family.New(c.Spec, probes.Options{CheckName: c.Name, Logger: log.With("check", c.Name), StateDir: stateDir})
		if err != nil {
			return nil, fmt.Errorf("%s:%d: check %q: %w", cfg.File, c.Line, c.Name, err)
		}
		jobs = append(jobs, scheduler.Job{
			Name:        c.Name,
			Type:        c.Type,
			Interval:    time.Duration(c.Interval),
			Recheck:     time.Duration(c.RecheckInterval),
			Timeout:     time.Duration(c.Timeout),
			Jitter:      time.Duration(cfg.Global.Jitter),
			Splay:       time.Duration(cfg.Global.StartupSplay),
			Fingerprint: fingerprint(&c, cfg.Global),
			Prober:      p,
		})
	}
	return jobs, nil
}

// fingerprint identifies what a check's job runs: the check and the global
// settings its schedule takes.
func fingerprint(c *config.Check, g config.Global) scheduler.Fingerprint {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s|jitter=%s|splay=%s", c.Fingerprint(), g.Jitter, g.StartupSplay))
	return scheduler.Fingerprint(sum[:16])
}
