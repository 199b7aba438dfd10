package lock

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/internal/confkit"
)

// StoreKV is the agent store's runbook state, for the local backend.
type StoreKV interface {
	RunbookStateGet(ctx context.Context, key string) (string, bool, error)
	RunbookStatePut(ctx context.Context, key, value string) error
}

// kvAdapter gives a StoreKV the Get/Put names NewLocal wants.
type kvAdapter struct{ kv StoreKV }

func (a kvAdapter) Get(ctx context.Context, key string) (string, bool, error) {
	return a.kv.RunbookStateGet(ctx, key)
}

func (a kvAdapter) Put(ctx context.Context, key, value string) error {
	return a.kv.RunbookStatePut(ctx, key, value)
}

// FromConfig builds the runbook lock and state backend the config names:
// the agent's store (kv), or etcd shared by a fleet (locks on a session
// with a TTL, fencing tokens from etcd revisions, cooldowns and the pause
// switch in etcd).
func FromConfig(ctx context.Context, cfg *config.Config, kv StoreKV, log *slog.Logger) (Locker, State, error) {
	if cfg.RunbookLock.Backend != "etcd" {
		l, s := NewLocal(kvAdapter{kv})
		return l, s, nil
	}
	e := cfg.RunbookLock.Etcd
	password := e.Password
	if e.PasswordFile != "" {
		s, err := confkit.ReadSecretFile(e.PasswordFile)
		if err != nil {
			return nil, nil, fmt.Errorf("runbook_lock.etcd: %w", err)
		}
		password = s
	}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(e.DialTimeout)+5*time.Second)
	defer cancel()
	l, s, err := NewEtcd(cctx, EtcdConfig{Endpoints: e.Endpoints, Prefix: e.Prefix, TTL: time.Duration(e.TTL),
		DialTimeout: time.Duration(e.DialTimeout), Username: e.Username, Password: password.Reveal(), Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("runbook_lock: etcd: %w", err)
	}
	return l, s, nil
}
