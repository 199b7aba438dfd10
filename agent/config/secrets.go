package config

import (
	"reflect"
	"strings"

	"github.com/vigil-project/vigil/internal/confkit"
)

// notSecretFiles are *_file fields that name certificates, not secrets
// (a private key file is a secret, but its PEM is never a value a step
// would print by accident, and it is not read here).
var notSecretFiles = map[string]bool{"ca_file": true, "cert_file": true, "key_file": true, "state_file": true}

// SecretValues returns every secret value the config holds: each Secret
// (from ${ENV} references) and the content of each *_file field that names
// a secret (dsn_file, password_file, url_file, routing_key_file, ...).
// Runbook and drill step output is redacted with them. Unreadable files
// are skipped: validation reports them.
func SecretValues(c *Config) []string {
	var out []string
	walkSecrets(reflect.ValueOf(c).Elem(), func(s confkit.Secret) {
		if s.IsSet() {
			out = append(out, s.Reveal())
		}
	}, func(path string) {
		if s, err := confkit.ReadSecretFile(path); err == nil {
			out = append(out, s.Reveal())
		}
	})
	return out
}

// isSecretFileField: a string field whose yaml key ends in _file and names
// a secret, not a certificate.
func isSecretFileField(f reflect.StructField) bool {
	tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return f.Type.Kind() == reflect.String && strings.HasSuffix(tag, "_file") && !notSecretFiles[tag]
}
