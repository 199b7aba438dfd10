package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/runbook/lock"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/probes"
)

// storeKV is the local runbook backend's state in the agent's store.
type storeKV struct{ st *store.Store }

func (kv storeKV) Get(ctx context.Context, key string) (string, bool, error) {
	return kv.st.RunbookStateGet(ctx, key)
}
func (kv storeKV) Put(ctx context.Context, key, value string) error {
	return kv.st.RunbookStatePut(ctx, key, value)
}

// newRunbookBackend builds the runbook lock and state backend: the agent's
// store, or etcd shared by a fleet (locks on a session with a TTL, fencing
// tokens from etcd revisions, cooldowns and the pause switch in etcd).
func newRunbookBackend(ctx context.Context, cfg *config.Config, st *store.Store, log *slog.Logger) (lock.Locker, lock.State, error) {
	switch cfg.RunbookLock.Backend {
	case "etcd":
		e := cfg.RunbookLock.Etcd
		password := e.Password
		if e.PasswordFile != "" {
			s, err := probes.ReadSecretFile(e.PasswordFile)
			if err != nil {
				return nil, nil, fmt.Errorf("runbook_lock.etcd: %w", err)
			}
			password = s
		}
		cctx, cancel := context.WithTimeout(ctx, time.Duration(e.DialTimeout)+5*time.Second)
		defer cancel()
		l, s, err := lock.NewEtcd(cctx, lock.EtcdConfig{Endpoints: e.Endpoints, Prefix: e.Prefix, TTL: time.Duration(e.TTL),
			DialTimeout: time.Duration(e.DialTimeout), Username: e.Username, Password: password.Reveal(), Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("runbook_lock: etcd: %w", err)
		}
		return l, s, nil
	default:
		l, s := lock.NewLocal(storeKV{st})
		return l, s, nil
	}
}
