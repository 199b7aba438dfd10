package notify

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/vigil-project/vigil/internal/confkit"
)

// Integrations take their credentials the same way: inline as a
// confkit.Secret (an environment reference) under a key, or from a file
// under the key plus "_file". For chat robots and webhooks the credential
// is the address itself, so these helpers never quote an address in an
// error.

// CheckSecret checks a secret that may be set inline (field) or in a file
// (field_file) for Validate: setting both is an error, and so is setting
// neither when the secret is required. It returns nil or a field error.
func CheckSecret(field string, s confkit.Secret, file string, required bool) error {
	switch {
	case required && s.IsSet() == (file != ""):
		return confkit.FieldErrorf(field, "set exactly one of %s and %s_file", field, field)
	case s.IsSet() && file != "":
		return confkit.FieldErrorf(field, "set at most one of %s and %s_file", field, field)
	}
	return nil
}

// ReadSecret resolves a secret set inline or in a file (field_file), the
// file winning when set, so New fails on an unreadable file rather than the
// first page. The error names the file's key.
func ReadSecret(field string, s confkit.Secret, file string) (confkit.Secret, error) {
	if file == "" {
		return s, nil
	}
	v, err := confkit.ReadSecretFile(file)
	if err != nil {
		return confkit.Secret{}, fmt.Errorf("%s_file: %w", field, err)
	}
	return v, nil
}

// CheckURL checks that s is an http(s) address without ever quoting it: it
// may hold a token. want says what the address must be ("the robot's
// webhook address, https://…").
func CheckURL(s, want string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be " + want)
	}
	return nil
}

// CheckSecretURL checks a required address that holds its credential, set
// as url or url_file, for Validate: exactly one of them, an inline one an
// http(s) address (see CheckURL). It returns nil or a field error at url;
// url_file is read, and checked, by ReadSecretURL.
func CheckSecretURL(u confkit.Secret, file, want string) error {
	if err := CheckSecret("url", u, file, true); err != nil {
		return err
	}
	if u.IsSet() {
		if err := CheckURL(u.Reveal(), want); err != nil {
			return confkit.FieldErrorf("url", "%w", err)
		}
	}
	return nil
}

// ReadSecretURL resolves an address checked by CheckSecretURL at New: url,
// or the content of url_file checked the same way. It returns the address
// as configured and parsed, which a Redactor needs to hide all its forms.
func ReadSecretURL(u confkit.Secret, file, want string) (string, *url.URL, error) {
	addr, err := ReadSecret("url", u, file)
	if err != nil {
		return "", nil, err
	}
	if file != "" {
		if err := CheckURL(addr.Reveal(), want); err != nil {
			return "", nil, fmt.Errorf("url_file: %w", err)
		}
	}
	parsed, err := url.Parse(addr.Reveal())
	if err != nil {
		// CheckURL parsed it already; never quote the parser's error, it
		// holds the address.
		return "", nil, errors.New("url does not parse")
	}
	return addr.Reveal(), parsed, nil
}
