// Package confkit holds what every config section of the agent shares:
// Secret, a value that can only come from the environment or a file and
// never prints, FieldError, a validation problem with one field that
// the config loader turns into file:line, and Plain, a section as its YAML
// reads.
package confkit

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Secret is a config value that must never be shown: passwords, tokens,
// DSNs with credentials. In YAML it can only be an environment reference,
// "${NAME}", resolved when the config is loaded; a literal is rejected so
// secrets stay out of config files (families offer a matching *_file field
// read with ReadSecretFile). It prints, logs and marshals as "<secret>".
type Secret struct {
	value string
	// ref is the environment reference it came from, kept for messages.
	ref string
}

const redacted = "<secret>"

var envRefRE = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// UnmarshalYAML resolves a "${NAME}" reference from the environment.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("expected an environment reference like ${NAME}")
	}
	m := envRefRE.FindStringSubmatch(n.Value)
	if m == nil {
		return errors.New("secrets cannot be written inline: use an environment reference like ${NAME} or the matching _file field")
	}
	v, ok := os.LookupEnv(m[1])
	if !ok {
		return fmt.Errorf("environment variable %s is not set", m[1])
	}
	if v == "" {
		return fmt.Errorf("environment variable %s is empty", m[1])
	}
	*s = Secret{value: v, ref: n.Value}
	return nil
}

// ReadSecretFile reads a secret from a file, as *_file fields do. One
// trailing newline is dropped: files written by `echo` end with one.
func ReadSecretFile(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Secret{}, fmt.Errorf("read secret file: %w", err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return Secret{}, fmt.Errorf("secret file %s is empty", path)
	}
	return Secret{value: v, ref: path}, nil
}

// Reveal returns the secret for use (a connection string, a header). The
// result must not be logged, exported or returned by the API.
func (s Secret) Reveal() string { return s.value }

// IsSet reports whether a value was configured.
func (s Secret) IsSet() bool { return s.value != "" }

// IsZero lets omitempty drop an unset secret (and keep a set one, shown
// redacted) when a config is rendered for the API.
func (s Secret) IsZero() bool { return s.value == "" }

// String, GoString, MarshalYAML, MarshalJSON and MarshalText redact.
func (s Secret) String() string                { return s.redact() }
func (s Secret) GoString() string              { return s.redact() }
func (s Secret) MarshalYAML() (any, error)     { return s.redact(), nil }
func (s Secret) MarshalText() ([]byte, error)  { return []byte(s.redact()), nil }
func (s Secret) MarshalJSON() ([]byte, error)  { return []byte(`"` + s.redact() + `"`), nil }
func (s Secret) Format(f fmt.State, verb rune) { f.Write([]byte(s.redact())) }

func (s Secret) redact() string {
	if s.value == "" {
		return ""
	}
	return redacted
}

// NewSecret wraps a value obtained elsewhere (a file, a test) as a Secret.
func NewSecret(value string) Secret { return Secret{value: value, ref: "<value>"} }
