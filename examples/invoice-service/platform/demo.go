package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// DemoOptions configure the all-in-one demo.
type DemoOptions struct {
	// Host the public listeners bind to (default 127.0.0.1). Admin
	// listeners always bind to 127.0.0.1.
	Host string
	// BasePort: gateway, primary, standby and upstream listen on BasePort
	// to BasePort+3, their admin listeners on BasePort+10 to +13. Zero picks
	// free ports (tests).
	BasePort int
	// DataDir holds the SQLite files.
	DataDir string
	// IssuerDSN, when set, is a PostgreSQL DSN both issuers share instead
	// of their own SQLite files.
	IssuerDSN string
	Region    string
	// AmountBasis is the issuers' QR amount basis: auto (default),
	// excluding_tax or including_tax; see IssuerOptions.
	AmountBasis  string
	SyncInterval time.Duration
	Logger       *slog.Logger
}

// Demo is the running platform.
type Demo struct {
	Gateway  *Gateway
	Primary  *Issuer
	Standby  *Issuer
	Upstream *Upstream
	// Base URLs of the public and admin listeners, by role.
	URL, AdminURL map[string]string
	// DataDir holds the SQLite files (issuers' unless IssuerDSN was set).
	DataDir string

	dbs  []*DB
	wg   sync.WaitGroup
	errs chan error
}

// Roles of the demo in port order.
var demoRoles = []string{"gateway", "primary", "standby", "upstream"}

// StartDemo starts every role; they stop when ctx ends (then call Wait).
func StartDemo(ctx context.Context, o DemoOptions) (_ *Demo, err error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Region == "" {
		o.Region = "11"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	d := &Demo{URL: map[string]string{}, AdminURL: map[string]string{}, DataDir: o.DataDir, errs: make(chan error, 8)}
	defer func() {
		if err != nil {
			d.closeDBs()
		}
	}()
	pub := map[string]net.Listener{}
	adm := map[string]net.Listener{}
	defer func() {
		if err != nil {
			for _, l := range pub {
				l.Close()
			}
			for _, l := range adm {
				l.Close()
			}
		}
	}()
	for n, role := range demoRoles {
		port := func(off int) string {
			if o.BasePort == 0 {
				return "0"
			}
			return strconv.Itoa(o.BasePort + off)
		}
		if pub[role], err = net.Listen("tcp", net.JoinHostPort(o.Host, port(n))); err != nil {
			return nil, fmt.Errorf("%s: %w", role, err)
		}
		if adm[role], err = listenLoopback(net.JoinHostPort("127.0.0.1", port(10+n))); err != nil {
			return nil, fmt.Errorf("%s admin: %w", role, err)
		}
		d.URL[role] = "http://" + dialable(pub[role].Addr())
		d.AdminURL[role] = "http://" + adm[role].Addr().String()
	}

	open := func(name string) (*DB, error) {
		dsn := o.IssuerDSN
		if dsn == "" || name == "upstream" {
			dsn = filepath.Join(o.DataDir, name+".db")
		}
		db, err := OpenDB(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		d.dbs = append(d.dbs, db)
		return db, nil
	}
	udb, err := open("upstream")
	if err != nil {
		return nil, err
	}
	if d.Upstream, err = NewUpstream(ctx, udb, o.Logger); err != nil {
		return nil, err
	}
	for node, name := range []string{"primary", "standby"} {
		db, err := open(name)
		if err != nil {
			return nil, err
		}
		iss, err := NewIssuer(ctx, IssuerOptions{Name: name, Node: node + 1, Region: o.Region, AmountBasis: o.AmountBasis,
			DB: db, UpstreamURL: d.URL["upstream"], SyncInterval: o.SyncInterval, Logger: o.Logger})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if name == "primary" {
			d.Primary = iss
		} else {
			d.Standby = iss
		}
	}
	if d.Gateway, err = NewGateway(map[string]string{"primary": d.URL["primary"], "standby": d.URL["standby"]}, "primary", o.Logger); err != nil {
		return nil, err
	}
	handlers := map[string][2]http.Handler{
		"gateway":  {d.Gateway.Handler(), d.Gateway.AdminHandler()},
		"primary":  {d.Primary.Handler(), d.Primary.AdminHandler()},
		"standby":  {d.Standby.Handler(), d.Standby.AdminHandler()},
		"upstream": {d.Upstream.Handler(), d.Upstream.AdminHandler()},
	}
	for _, role := range demoRoles {
		for k, ln := range []net.Listener{pub[role], adm[role]} {
			h := handlers[role][k]
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				if err := serve(ctx, ln, h); err != nil {
					d.errs <- fmt.Errorf("%s: %w", role, err)
				}
			}()
		}
	}
	for _, iss := range []*Issuer{d.Primary, d.Standby} {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			iss.RunSync(ctx)
		}()
	}
	return d, nil
}

// Wait blocks until every listener and worker has stopped and returns the
// first serving error.
func (d *Demo) Wait() error {
	d.wg.Wait()
	d.closeDBs()
	close(d.errs)
	var errs []error
	for err := range d.errs {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (d *Demo) closeDBs() {
	for _, db := range d.dbs {
		db.Close()
	}
	d.dbs = nil
}

// dialable turns a wildcard listen address into one a client can dial.
func dialable(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
