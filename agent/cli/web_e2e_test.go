package cli_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestWebConfigTLS serves the agent over TLS with basic auth from an
// exporter-toolkit web config file, on two listeners, and rotates the
// certificate without a restart.
func TestWebConfigTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, _, pool := selfSigned(t, dir, "first")
	hash, err := bcrypt.GenerateFromPassword([]byte("tls-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := writeConfig(t, dir, "web.yml", "tls_server_config:\n  cert_file: first.crt\n  key_file: first.key\n"+
		"basic_auth_users:\n  ops: "+string(hash)+"\n")
	addr1, addr2 := freePort(t), freePort(t)
	logs := &syncBuffer{mu: make(chan struct{}, 1)}
	cmd := exec.Command(vigilBin, "run", "--web.listen-address", addr1, "--web.listen-address", addr2,
		"--web.config.file", webCfg, "--storage.path", filepath.Join(dir, "vigil.db"))
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	client := func(pool *x509.CertPool) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	get := func(c *http.Client, url, user, pass string) (int, error) {
		req, _ := http.NewRequest("GET", url, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, _ := get(client(pool), "https://"+addr1+"/-/ready", "", ""); st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not serving TLS:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, addr := range []string{addr1, addr2} {
		if st, err := get(client(pool), "https://"+addr+"/metrics", "ops", "tls-pass"); st != 200 {
			t.Errorf("%s /metrics with the password: %d %v", addr, st, err)
		}
		if st, err := get(client(pool), "https://"+addr+"/metrics", "", ""); st != 401 {
			t.Errorf("%s /metrics without a password: %d %v", addr, st, err)
		}
		if st, err := get(http.DefaultClient, "http://"+addr+"/metrics", "ops", "tls-pass"); st == 200 {
			t.Errorf("%s answers plain HTTP: %d %v", addr, st, err)
		}
	}
	// A new certificate in place of the old: new connections get it.
	_, _, pool2 := selfSigned(t, dir, "first")
	if st, err := get(client(pool2), "https://"+addr1+"/-/healthy", "", ""); st != 200 {
		t.Errorf("after rotating the certificate: %d %v", st, err)
	}
	if !strings.Contains(logs.String(), `tls=true`) {
		t.Errorf("log does not say TLS is on:\n%s", logs.String())
	}
}

// TestCLIWithAuth: the API commands (silence, runbook, drill) log in with
// VIGIL_AGENT_USER/VIGIL_AGENT_PASSWORD or credentials in --agent.url, and
// say what is wrong without them.
func TestCLIWithAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("cli-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := writeConfig(t, dir, "web.yml", "basic_auth_users:\n  li.wei: "+string(hash)+"\n")
	a := startAgent(t, "--web.config.file", webCfg, "--storage.path", filepath.Join(dir, "vigil.db"))
	cli := func(env []string, url string) (string, int) {
		cmd := exec.Command(vigilBin, "silence", "add", "--agent.url", url, `check="host"`, "-d", "10m", "-c", "maintenance")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	host := strings.TrimPrefix(a.url, "http://")
	tests := []struct {
		name string
		env  []string
		url  string
		ok   bool
		out  string
	}{
		{"no credentials", []string{"VIGIL_AGENT_USER=", "VIGIL_AGENT_PASSWORD="}, a.url, false, "wants a user: set VIGIL_AGENT_USER"},
		{"wrong password", []string{"VIGIL_AGENT_USER=li.wei", "VIGIL_AGENT_PASSWORD=nope"}, a.url, false, `refused user "li.wei"`},
		{"environment", []string{"VIGIL_AGENT_USER=li.wei", "VIGIL_AGENT_PASSWORD=cli-pass"}, a.url, true, ""},
		{"in the URL", []string{"VIGIL_AGENT_USER=", "VIGIL_AGENT_PASSWORD="}, "http://li.wei:cli-pass@" + host, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := cli(tt.env, tt.url)
			if (code == 0) != tt.ok || !strings.Contains(out, tt.out) {
				t.Errorf("exit %d: %s", code, out)
			}
			if strings.Contains(out, "cli-pass") {
				t.Errorf("the password is in the output: %s", out)
			}
		})
	}
	// The silence records the authenticated user.
	req, _ := http.NewRequest("GET", a.url+"/api/v1/silences", nil)
	req.SetBasicAuth("li.wei", "cli-pass")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	io.Copy(&body, resp.Body)
	if !strings.Contains(strings.ReplaceAll(body.String(), " ", ""), `"createdBy":"li.wei`) {
		t.Errorf("silences: %s", body.String())
	}
}
