package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func TestRemoteWriteDefaultsAndSecrets(t *testing.T) {
	t.Setenv("RW_TOKEN", "s3cret-token")
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("file-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("rw.yml", []byte(`
global: {evaluation_interval: 15s, labels: {site: sh}}
checks: []
remote_write:
  - url: http://prom.example:9090/api/v1/write
    bearer_token: ${RW_TOKEN}
  - url: https://vm.example/api/v1/write
    name: vm
    interval: 1m
    basic_auth: {username: ops, password_file: `+pwFile+`}
    external_labels: {region: east}
    write_relabel_configs:
      - {source_labels: [__name__], regex: "go_.*", action: drop}
    queue_config: {capacity: 5000, max_samples_per_send: 500}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.RemoteWrite) != 2 {
		t.Fatalf("remotes: %+v", cfg.RemoteWrite)
	}
	a, b := cfg.RemoteWrite[0], cfg.RemoteWrite[1]
	tests := []struct {
		what      string
		got, want any
	}{
		{"derived name", a.Name, "prom.example:9090"},
		{"interval from evaluation_interval", a.Interval, model.Duration(15 * time.Second)},
		{"remote_timeout default", a.RemoteTimeout, model.Duration(30 * time.Second)},
		{"capacity default", a.QueueConfig.Capacity, DefaultRemoteWriteCapacity},
		{"max_samples_per_send default", a.QueueConfig.MaxSamplesPerSend, 2000},
		{"batch_send_deadline default", a.QueueConfig.BatchSendDeadline, model.Duration(5 * time.Second)},
		{"backoff defaults", [2]model.Duration{a.QueueConfig.MinBackoff, a.QueueConfig.MaxBackoff}, [2]model.Duration{model.Duration(30 * time.Millisecond), model.Duration(5 * time.Second)}},
		{"bearer token resolved", a.BearerToken.Reveal(), "s3cret-token"},
		{"bearer token prints redacted", a.BearerToken.String(), "<secret>"},
		{"given name", b.Name, "vm"},
		{"given interval", b.Interval, model.Duration(time.Minute)},
		{"given capacity", b.QueueConfig.Capacity, 5000},
		{"given max_samples_per_send, other queue keys default", [2]any{b.QueueConfig.MaxSamplesPerSend, b.QueueConfig.MinBackoff}, [2]any{500, model.Duration(30 * time.Millisecond)}},
		{"relabel compiled", len(b.Relabel), 1},
	}
	for _, tt := range tests {
		t.Run(tt.what, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	secrets := SecretValues(cfg)
	for _, s := range []string{"s3cret-token", "file-password"} {
		if !slices.Contains(secrets, s) {
			t.Errorf("SecretValues lacks %q (runbook output would not be redacted)", s)
		}
	}
}
