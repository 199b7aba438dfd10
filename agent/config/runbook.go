package config

import (
	"fmt"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/internal/confkit"
	"gopkg.in/yaml.v3"
)

// RunbookLock selects the runbook lock and state backend.
type RunbookLock struct {
	// Backend is local (default: this agent's store) or etcd.
	Backend string     `yaml:"backend" json:"backend"`
	Etcd    EtcdConfig `yaml:"etcd" json:"etcd,omitzero"`
}

// EtcdConfig reaches the etcd cluster a fleet shares.
type EtcdConfig struct {
	Endpoints []string `yaml:"endpoints" json:"endpoints,omitempty"`
	// Prefix of every key vigil writes (default /vigil/runbooks/).
	Prefix string `yaml:"prefix" json:"prefix,omitempty"`
	// TTL of the session holding locks: a dead agent's locks expire after it.
	TTL          model.Duration `yaml:"ttl" json:"ttl,omitempty"`
	DialTimeout  model.Duration `yaml:"dial_timeout" json:"dial_timeout,omitempty"`
	Username     string         `yaml:"username" json:"username,omitempty"`
	Password     confkit.Secret `yaml:"password" json:"password,omitzero"`
	PasswordFile string         `yaml:"password_file" json:"password_file,omitempty"`
}

func (d *decoder) validateRunbookLock(root *yaml.Node, l *RunbookLock) {
	n := lookupValue(root, "runbook_lock")
	at := func(path string) *yaml.Node {
		if n != nil {
			if k := lookupPath(n, path); k != nil {
				return k
			}
			return n
		}
		return root
	}
	switch l.Backend {
	case "local":
	case "etcd":
		e := &l.Etcd
		if len(e.Endpoints) == 0 {
			d.errorf(at("etcd"), "runbook_lock.etcd.endpoints", "the etcd backend needs endpoints")
		}
		if e.TTL == 0 {
			e.TTL = model.Duration(15 * time.Second)
		}
		if e.TTL < model.Duration(5*time.Second) {
			d.errorf(at("etcd.ttl"), "runbook_lock.etcd.ttl", "must be at least 5s")
		}
		if e.DialTimeout == 0 {
			e.DialTimeout = model.Duration(5 * time.Second)
		}
		if e.Prefix == "" {
			e.Prefix = "/vigil/runbooks/"
		}
		if e.Password.IsSet() && e.PasswordFile != "" {
			d.errorf(at("etcd.password"), "runbook_lock.etcd.password", "set at most one of password and password_file")
		}
	default:
		d.errorf(at("backend"), "runbook_lock.backend", "%s", fmt.Sprintf("must be local or etcd (got %q)", l.Backend))
	}
}
