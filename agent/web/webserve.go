package web

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/mdlayher/vsock"
	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// The agent reads the exporter-toolkit web config file (TLS, basic_auth_users
// with bcrypt hashes, http_server_config headers, rate_limit) itself instead
// of handing it to web.ListenAndServe: the toolkit puts every path behind
// basic auth, and vigil needs a policy per route (health always open, reads
// open when --web.public-read is set, state changes always authenticated).
// The file format, its validation (web.Validate) and the TLS settings
// (web.ConfigToTLSConfig) are the toolkit's own, and the file is re-read when
// it changes, as the toolkit does, so users and certificates rotate without
// a restart.

// webConfig is the current web config file.
type webConfig struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	stamp   fileStamp
	checked time.Time // when the file was last stat'ed
	cur     *web.Config
	limiter *rate.Limiter

	authMu    sync.Mutex // one bcrypt comparison at a time: each is ~50 ms of CPU at cost 10
	authCache map[[32]byte]bool
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// webConfigRecheck is how often the file is looked at for changes: a
// scrape or a page should not cost a stat each.
const webConfigRecheck = time.Second

// authCacheSize bounds the remembered (user, hash, password) verdicts.
const authCacheSize = 256

// loadWebConfig validates the web config file at path; an empty path means
// plain HTTP without users.
func loadWebConfig(path string, log *slog.Logger) (*webConfig, error) {
	wc := &webConfig{path: path, log: log, authCache: map[[32]byte]bool{}}
	if path == "" {
		wc.cur = &web.Config{}
		return wc, nil
	}
	if err := wc.reload(); err != nil {
		return nil, fmt.Errorf("web config %s: %w", path, err)
	}
	return wc, nil
}

func (wc *webConfig) reload() error {
	st, err := os.Stat(wc.path)
	if err != nil {
		return err
	}
	if err := web.Validate(wc.path); err != nil {
		return err
	}
	content, err := os.ReadFile(wc.path)
	if err != nil {
		return err
	}
	// The toolkit's defaults and strict decoding (getConfig is not exported).
	c := &web.Config{
		TLSConfig:  web.TLSConfig{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13},
		HTTPConfig: web.HTTPConfig{HTTP2: true},
	}
	if err := yaml.UnmarshalStrict(content, c); err != nil {
		return err
	}
	c.TLSConfig.SetDirectory(filepath.Dir(wc.path))
	var limiter *rate.Limiter
	if c.RateLimiterConfig.Interval != 0 {
		limiter = rate.NewLimiter(rate.Every(c.RateLimiterConfig.Interval), c.RateLimiterConfig.Burst)
	}
	wc.cur, wc.limiter, wc.stamp = c, limiter, fileStamp{st.ModTime(), st.Size()}
	wc.authMu.Lock()
	clear(wc.authCache)
	wc.authMu.Unlock()
	return nil
}

// current returns the config, re-reading the file when it has changed. A
// file that became invalid is logged and the last valid config stays.
func (wc *webConfig) current() (*web.Config, *rate.Limiter) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if wc.path == "" || time.Since(wc.checked) < webConfigRecheck {
		return wc.cur, wc.limiter
	}
	wc.checked = time.Now()
	if st, err := os.Stat(wc.path); err == nil && (fileStamp{st.ModTime(), st.Size()}) != wc.stamp {
		if err := wc.reload(); err != nil {
			wc.stamp = fileStamp{st.ModTime(), st.Size()} // log once per change
			wc.log.Error("web config file is invalid; keeping the previous one", "file", wc.path, "err", err)
		} else {
			wc.log.Info("web config file reloaded", "file", wc.path, "users", len(wc.cur.Users))
		}
	}
	return wc.cur, wc.limiter
}

// authResult is what a request's credentials amount to.
type authResult int

const (
	authNone authResult = iota // no credentials sent
	authOK
	authBad // credentials sent and wrong
)

// authenticate checks the request's basic-auth credentials against the
// configured users.
func (wc *webConfig) authenticate(c *web.Config, r *http.Request) (string, authResult) {
	user, pass, sent := r.BasicAuth()
	if !sent {
		return "", authNone
	}
	if len(c.Users) == 0 {
		// Ignored where no users are configured, as exporter-toolkit does:
		// a scraper with credentials keeps working when auth is turned off.
		return "", authNone
	}
	hash, known := c.Users[user]
	if !known {
		// Same cost as a real comparison, so user names cannot be probed by
		// timing (the toolkit's fixed hash of "fakepassword").
		hash = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"
	}
	key := sha256.Sum256([]byte(user + "\x00" + string(hash) + "\x00" + pass))
	wc.authMu.Lock()
	defer wc.authMu.Unlock()
	ok, cached := wc.authCache[key]
	if !cached {
		ok = bcrypt.CompareHashAndPassword([]byte(hash), []byte(pass)) == nil && known
		if len(wc.authCache) >= authCacheSize {
			clear(wc.authCache)
		}
		wc.authCache[key] = ok
	}
	if !ok {
		return "", authBad
	}
	return user, authOK
}

// serveWeb listens on the configured addresses (or systemd's sockets) and
// serves srv on each, with TLS when the web config sets it.
func serveWeb(ctx context.Context, srv *http.Server, flags *web.FlagConfig, wc *webConfig, log *slog.Logger) error {
	var listeners []net.Listener
	if flags.WebSystemdSocket != nil && *flags.WebSystemdSocket {
		ls, err := activation.Listeners()
		if err != nil {
			return err
		}
		if len(ls) == 0 {
			return errors.New("no socket activation file descriptors found")
		}
		listeners = ls
	} else {
		if flags.WebListenAddresses == nil || len(*flags.WebListenAddresses) == 0 {
			return web.ErrNoListeners
		}
		for _, addr := range *flags.WebListenAddresses {
			l, err := listen(ctx, addr)
			if err != nil {
				for _, o := range listeners {
					o.Close()
				}
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			listeners = append(listeners, l)
		}
	}
	c, _ := wc.current()
	if c.TLSConfig.IsEnabled() {
		tlsCfg, err := web.ConfigToTLSConfig(&c.TLSConfig)
		if err != nil {
			return fmt.Errorf("web config %s: %w", wc.path, err)
		}
		if !c.HTTPConfig.HTTP2 {
			srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		}
		// Certificates are re-read on each new connection, as the toolkit does.
		tlsCfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cur, _ := wc.current()
			cfg, err := web.ConfigToTLSConfig(&cur.TLSConfig)
			if err != nil {
				return nil, err
			}
			if c.HTTPConfig.HTTP2 {
				cfg.NextProtos = []string{"h2", "http/1.1"}
			} else {
				cfg.NextProtos = []string{"http/1.1"}
			}
			return cfg, nil
		}
		srv.TLSConfig = tlsCfg
	}
	// Decided once: Serve sets up HTTP/2, which gives the server a
	// TLSConfig of its own, so asking again from a second listener's
	// goroutine would see one where none was configured.
	useTLS := srv.TLSConfig != nil
	var g errgroup.Group
	for _, l := range listeners {
		log.Info("listening", "address", l.Addr().String(), "tls", useTLS, "basic_auth_users", len(c.Users))
		g.Go(func() error {
			if useTLS {
				return srv.ServeTLS(l, "", "")
			}
			return srv.Serve(l)
		})
	}
	return g.Wait()
}

// listen opens a TCP address, or vsock://:PORT (a VM's host channel), as
// exporter-toolkit does.
func listen(ctx context.Context, addr string) (net.Listener, error) {
	if !strings.HasPrefix(addr, "vsock://") {
		return (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, err
	}
	_, portStr, err := net.SplitHostPort(u.Host)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("vsock port: %w", err)
	}
	return vsock.Listen(uint32(port), nil)
}
