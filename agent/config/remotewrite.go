package config

import (
	"fmt"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/internal/confkit"
)

// RemoteWrite is one `remote_write:` entry: where the agent pushes every
// series it exports (and its rules' ALERTS series) with the Prometheus
// remote-write protocol, for agents a central Prometheus cannot scrape.
// Keys follow Prometheus's remote_write section; credentials follow the
// agent's secret rules (${ENV} or *_file, never inline).
type RemoteWrite struct {
	// URL is the receiver's write endpoint, e.g.
	// http://prometheus:9090/api/v1/write. Credentials do not go in it.
	URL string `yaml:"url" json:"url"`
	// Name labels the remote's metrics and log lines (default: the URL's
	// host:port).
	Name string `yaml:"name" json:"name"`
	// RemoteTimeout bounds one write request.
	RemoteTimeout model.Duration `yaml:"remote_timeout" json:"remote_timeout"`
	// Interval is how often a snapshot of every series is queued (default:
	// global.evaluation_interval, the agent's own scrape interval).
	Interval model.Duration `yaml:"interval" json:"interval"`
	// Headers are sent with every request (not Authorization: use
	// basic_auth or bearer_token, which are secrets).
	Headers         map[string]string    `yaml:"headers" json:"headers,omitempty"`
	BasicAuth       *RemoteWriteAuth     `yaml:"basic_auth" json:"basic_auth,omitempty"`
	BearerToken     confkit.Secret       `yaml:"bearer_token" json:"bearer_token,omitzero"`
	BearerTokenFile string               `yaml:"bearer_token_file" json:"bearer_token_file,omitempty"`
	TLSConfig       RemoteWriteTLSConfig `yaml:"tls_config" json:"tls_config,omitzero"`
	// ExternalLabels are added to every series sent to this remote, over
	// global.labels; a series' own label of the same name wins.
	ExternalLabels map[string]string `yaml:"external_labels" json:"external_labels,omitempty"`
	QueueConfig    QueueConfig       `yaml:"queue_config" json:"queue_config"`
	// WriteRelabelConfigs rewrite or drop series before they are queued
	// (Prometheus's relabel_config; external labels are already applied).
	WriteRelabelConfigs []RelabelConfig `yaml:"write_relabel_configs" json:"write_relabel_configs,omitempty"`

	// Relabel is WriteRelabelConfigs compiled; set by Parse.
	Relabel []*relabel.Config `yaml:"-" json:"-"`
}

// RemoteWriteAuth is HTTP basic auth for a remote.
type RemoteWriteAuth struct {
	Username     string         `yaml:"username" json:"username"`
	Password     confkit.Secret `yaml:"password" json:"password,omitzero"`
	PasswordFile string         `yaml:"password_file" json:"password_file,omitempty"`
}

// RemoteWriteTLSConfig verifies the receiver and presents a client
// certificate (Prometheus's tls_config keys).
type RemoteWriteTLSConfig struct {
	CAFile             string `yaml:"ca_file" json:"ca_file,omitempty"`
	CertFile           string `yaml:"cert_file" json:"cert_file,omitempty"`
	KeyFile            string `yaml:"key_file" json:"key_file,omitempty"`
	ServerName         string `yaml:"server_name" json:"server_name,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" json:"insecure_skip_verify,omitempty"`
}

// QueueConfig bounds a remote's in-memory queue and its batches.
type QueueConfig struct {
	// Capacity is how many samples the queue holds (the batch being sent
	// included); past it the oldest are dropped and counted.
	Capacity          int            `yaml:"capacity" json:"capacity"`
	MaxSamplesPerSend int            `yaml:"max_samples_per_send" json:"max_samples_per_send"`
	BatchSendDeadline model.Duration `yaml:"batch_send_deadline" json:"batch_send_deadline"`
	MinBackoff        model.Duration `yaml:"min_backoff" json:"min_backoff"`
	MaxBackoff        model.Duration `yaml:"max_backoff" json:"max_backoff"`
}

// RelabelConfig is one write_relabel_configs entry, decoded strictly and
// compiled into Prometheus's relabel.Config.
type RelabelConfig struct {
	SourceLabels []string `yaml:"source_labels" json:"source_labels,omitempty"`
	Separator    *string  `yaml:"separator" json:"separator,omitempty"`
	Regex        *string  `yaml:"regex" json:"regex,omitempty"`
	Modulus      uint64   `yaml:"modulus" json:"modulus,omitempty"`
	TargetLabel  string   `yaml:"target_label" json:"target_label,omitempty"`
	Replacement  *string  `yaml:"replacement" json:"replacement,omitempty"`
	Action       string   `yaml:"action" json:"action,omitempty"`
}

// Queue defaults, as Prometheus's queue_config except the capacity, which
// here is the whole in-memory buffer of a remote (Prometheus keeps its
// backlog in the WAL on disk).
const (
	DefaultRemoteWriteCapacity = 100_000
	// MaxRemoteWriteCapacity keeps a typo from reserving gigabytes.
	MaxRemoteWriteCapacity = 10_000_000
)

// DefaultRemoteWrite is a remote_write entry before its keys are decoded.
func DefaultRemoteWrite() RemoteWrite {
	return RemoteWrite{
		RemoteTimeout: model.Duration(30 * time.Second),
		QueueConfig: QueueConfig{
			Capacity:          DefaultRemoteWriteCapacity,
			MaxSamplesPerSend: 2000,
			BatchSendDeadline: model.Duration(5 * time.Second),
			MinBackoff:        model.Duration(30 * time.Millisecond),
			MaxBackoff:        model.Duration(5 * time.Second),
		},
	}
}

// remoteWriteName is what a name may be: it becomes a label value and a
// log field.
var remoteWriteName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$`)

// reservedRemoteHeaders are set by the agent (Prometheus refuses the same).
var reservedRemoteHeaders = map[string]bool{
	"authorization": true, "host": true, "content-encoding": true, "content-length": true, "content-type": true,
	"user-agent": true, "connection": true, "keep-alive": true, "proxy-authenticate": true,
	"proxy-authorization": true, "www-authenticate": true, "accept-encoding": true,
	"x-prometheus-remote-write-version": true,
}

// decodeRemoteWrite decodes the remote_write list, each entry over its
// defaults.
func (d *decoder) decodeRemoteWrite(n *yaml.Node) []RemoteWrite {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "remote_write", "expected a list, got %s", kindName(n))
		return nil
	}
	out := make([]RemoteWrite, len(n.Content))
	for i, item := range n.Content {
		out[i] = DefaultRemoteWrite()
		d.decode(item, reflect.ValueOf(&out[i]).Elem(), fmt.Sprintf("remote_write[%d]", i))
	}
	return out
}

// validateRemoteWrite checks the entries, fills in names and intervals,
// and compiles their relabel configs.
func (d *decoder) validateRemoteWrite(root *yaml.Node, cfg *Config) {
	list := lookupValue(root, "remote_write")
	at := itemNode(root, list)
	seen := map[string]int{}
	for i := range cfg.RemoteWrite {
		rw := &cfg.RemoteWrite[i]
		path := fmt.Sprintf("remote_write[%d]", i)
		item := lookupPath(list, fmt.Sprint(i))
		u, err := url.Parse(rw.URL)
		switch {
		case rw.URL == "":
			d.errorf(at(i, ""), path+".url", "required: the receiver's write endpoint, e.g. http://prometheus:9090/api/v1/write")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			// Never quote the address: it may carry a credential.
			d.errorf(at(i, "url"), path+".url", "must be an http(s) URL like http://prometheus:9090/api/v1/write")
		case u.User != nil:
			d.errorf(at(i, "url"), path+".url", "credentials cannot be written in the URL: use basic_auth with password_file or password: ${ENV}")
		}
		if rw.Name == "" && err == nil && u != nil {
			rw.Name = u.Host
		}
		switch first, dup := seen[rw.Name]; {
		case rw.Name == "":
		case !remoteWriteName.MatchString(rw.Name):
			d.errorf(at(i, "name"), path+".name", "invalid name %q: use letters, digits, '_', '.', ':' or '-' (at most 63)", rw.Name)
		case dup:
			n := at(i, "name")
			if lookupValue(item, "name") == nil {
				n = at(i, "url")
			}
			d.errorf(n, path+".name", "duplicate remote name %q (remote_write[%d] has it); give each remote its own name", rw.Name, first)
		default:
			seen[rw.Name] = i
		}
		if v := lookupValue(item, "interval"); v == nil || v.Tag == "!!null" {
			rw.Interval = cfg.Global.EvaluationInterval
		} else if rw.Interval < model.Duration(time.Second) {
			d.errorf(at(i, "interval"), path+".interval", "must be at least 1s")
		}
		if rw.RemoteTimeout <= 0 {
			d.errorf(at(i, "remote_timeout"), path+".remote_timeout", "must be greater than 0")
		}
		for name := range rw.Headers {
			if reservedRemoteHeaders[strings.ToLower(name)] {
				d.errorf(at(i, "headers."+name), path+".headers."+name, "is set by the agent (credentials go in basic_auth or bearer_token, which are secrets)")
			}
		}
		if b := rw.BasicAuth; b != nil {
			if b.Username == "" {
				d.errorf(at(i, "basic_auth"), path+".basic_auth.username", "required")
			}
			// An inline password was reported by its decoder already.
			reported := !b.Password.IsSet() && lookupValue(lookupValue(item, "basic_auth"), "password") != nil
			if b.Password.IsSet() == (b.PasswordFile != "") && !reported {
				d.errorf(at(i, "basic_auth"), path+".basic_auth.password", "set exactly one of password (${ENV}) and password_file")
			}
		}
		if rw.BearerToken.IsSet() && rw.BearerTokenFile != "" {
			d.errorf(at(i, "bearer_token"), path+".bearer_token", "set at most one of bearer_token and bearer_token_file")
		}
		if rw.BasicAuth != nil && (rw.BearerToken.IsSet() || rw.BearerTokenFile != "") {
			d.errorf(at(i, "basic_auth"), path+".basic_auth", "set at most one of basic_auth and bearer_token")
		}
		d.validateRemoteFiles(rw, at, i, path)
		d.validateLabels(lookupValue(item, "external_labels"), at(i, "external_labels"), path+".external_labels", rw.ExternalLabels, false)
		d.validateQueue(&rw.QueueConfig, at, i, path+".queue_config")
		rw.Relabel = nil
		for j := range rw.WriteRelabelConfigs {
			field := fmt.Sprintf("write_relabel_configs.%d", j)
			rc, err := rw.WriteRelabelConfigs[j].Compile()
			if err != nil {
				d.errorf(at(i, field), fmt.Sprintf("%s.write_relabel_configs[%d]", path, j), "%v", err)
				continue
			}
			rw.Relabel = append(rw.Relabel, rc)
		}
	}
}

func (d *decoder) validateRemoteFiles(rw *RemoteWrite, at func(int, string) *yaml.Node, i int, path string) {
	t := rw.TLSConfig
	for _, f := range []struct{ key, file string }{
		{"tls_config.ca_file", t.CAFile}, {"tls_config.cert_file", t.CertFile}, {"tls_config.key_file", t.KeyFile},
		{"bearer_token_file", rw.BearerTokenFile},
	} {
		if f.file == "" {
			continue
		}
		if _, err := os.Stat(f.file); err != nil {
			d.errorf(at(i, f.key), path+"."+f.key, "%v", err)
		}
	}
	if b := rw.BasicAuth; b != nil && b.PasswordFile != "" {
		if _, err := confkit.ReadSecretFile(b.PasswordFile); err != nil {
			d.errorf(at(i, "basic_auth.password_file"), path+".basic_auth.password_file", "%v", err)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		d.errorf(at(i, "tls_config"), path+".tls_config.cert_file", "cert_file and key_file must be set together")
	}
}

func (d *decoder) validateQueue(q *QueueConfig, at func(int, string) *yaml.Node, i int, path string) {
	field := func(key string) *yaml.Node { return at(i, "queue_config."+key) }
	switch {
	case q.MaxSamplesPerSend < 1:
		d.errorf(field("max_samples_per_send"), path+".max_samples_per_send", "must be at least 1")
	case q.Capacity < q.MaxSamplesPerSend || q.Capacity > MaxRemoteWriteCapacity:
		d.errorf(field("capacity"), path+".capacity", "must be between max_samples_per_send (%d) and %d, got %d", q.MaxSamplesPerSend, MaxRemoteWriteCapacity, q.Capacity)
	}
	for _, f := range []struct {
		key string
		v   model.Duration
	}{{"batch_send_deadline", q.BatchSendDeadline}, {"min_backoff", q.MinBackoff}, {"max_backoff", q.MaxBackoff}} {
		if f.v <= 0 {
			d.errorf(field(f.key), path+"."+f.key, "must be greater than 0")
		}
	}
	if q.MinBackoff > q.MaxBackoff {
		d.errorf(field("min_backoff"), path+".min_backoff", "must not exceed max_backoff (%s)", q.MaxBackoff)
	}
}

// Compile builds Prometheus's relabel.Config with its defaults (regex
// (.*), separator ";", replacement $1, action replace) and validates it.
func (c *RelabelConfig) Compile() (*relabel.Config, error) {
	rc := relabel.DefaultRelabelConfig
	rc.SourceLabels = make(model.LabelNames, len(c.SourceLabels))
	for i, l := range c.SourceLabels {
		rc.SourceLabels[i] = model.LabelName(l)
	}
	if c.Separator != nil {
		rc.Separator = *c.Separator
	}
	if c.Regex != nil {
		re, err := relabel.NewRegexp(*c.Regex)
		if err != nil {
			return nil, fmt.Errorf("regex: %w", err)
		}
		rc.Regex = re
	}
	if c.Replacement != nil {
		rc.Replacement = *c.Replacement
	}
	if c.Action != "" {
		rc.Action = relabel.Action(strings.ToLower(c.Action))
		switch rc.Action {
		case relabel.Replace, relabel.Keep, relabel.Drop, relabel.KeepEqual, relabel.DropEqual, relabel.HashMod,
			relabel.LabelMap, relabel.LabelDrop, relabel.LabelKeep, relabel.Lowercase, relabel.Uppercase:
		default:
			return nil, fmt.Errorf("unknown relabel action %q", c.Action)
		}
	}
	rc.Modulus = c.Modulus
	rc.TargetLabel = c.TargetLabel
	if err := rc.Validate(model.LegacyValidation); err != nil {
		return nil, err
	}
	return &rc, nil
}
