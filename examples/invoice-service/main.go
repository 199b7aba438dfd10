// Command invoice-service is the demo e-invoice platform vigil's invoice
// checks run against: issuers, a gateway and a simulated tax platform, alone
// or all together (`demo`). See README.md in this directory.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigil-project/vigil/examples/invoice-service/platform"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	app := kingpin.New("invoice-service", "Demo e-invoice platform for vigil: issuers (primary, standby), a gateway and a simulated upstream tax platform.")
	app.HelpFlag.Short('h')
	app.UsageWriter(stderr)
	app.ErrorWriter(stderr)
	logFile := app.Flag("log.file", "Write JSON logs (request log, sync failures) to this file instead of stderr.").String()
	logLevel := app.Flag("log.level", "debug, info, warn or error.").Default("info").Enum("debug", "info", "warn", "error")

	demo := app.Command("demo", "All roles in one process: gateway on the base port, primary +1, standby +2, upstream +3; admin listeners on 127.0.0.1 at +10..+13.")
	demoHost := demo.Flag("web.host", "Host the public listeners bind to.").Default("127.0.0.1").String()
	demoPort := demo.Flag("base-port", "First of the consecutive ports.").Default("8480").Int()
	demoData := demo.Flag("data.dir", "Directory for the SQLite databases.").Default("data/demo").String()
	demoDSN := demo.Flag("db.dsn", "PostgreSQL DSN both issuers share instead of SQLite (postgres://…).").Envar("INVOICE_DB_DSN").String()
	demoSync := demo.Flag("sync.interval", "How often the sync workers push pending invoices.").Default("1s").Duration()
	demoBasis := demo.Flag("qr.amount-basis", "Which total the QR amount carries: auto (tax-inclusive on 31/32, before tax on other types), excluding_tax or including_tax.").Default("auto").Enum("auto", "excluding_tax", "including_tax")

	issuer := app.Command("issuer", "One issuer: the issuing API and its sync worker.")
	issName := issuer.Flag("name", "Issuer name (primary, standby).").Default("primary").String()
	issNode := issuer.Flag("node", "Invoice-number digit of this issuer (1–9).").Default("1").Int()
	issRegion := issuer.Flag("region", "Two-digit region code of invoice numbers.").Default("11").String()
	issListen := issuer.Flag("web.listen-address", "Public API address.").Default(":8481").String()
	issAdmin := issuer.Flag("admin.listen-address", "Loopback admin address (faults, resync).").Default("127.0.0.1:8491").String()
	issDB := issuer.Flag("db", "SQLite file path or PostgreSQL DSN (postgres://…).").Default("data/issuer.db").Envar("INVOICE_DB_DSN").String()
	issUpstream := issuer.Flag("upstream.url", "Upstream tax platform base URL.").Default("http://127.0.0.1:8483").String()
	issSync := issuer.Flag("sync.interval", "How often the sync worker pushes pending invoices.").Default("1s").Duration()
	issBasis := issuer.Flag("qr.amount-basis", "Which total the QR amount carries: auto (tax-inclusive on 31/32, before tax on other types), excluding_tax or including_tax.").Default("auto").Enum("auto", "excluding_tax", "including_tax")

	gateway := app.Command("gateway", "Routes the issuing API to the active issuer; POST /admin/switch changes it.")
	gwListen := gateway.Flag("web.listen-address", "Public address.").Default(":8480").String()
	gwAdmin := gateway.Flag("admin.listen-address", "Loopback admin address (switch, faults).").Default("127.0.0.1:8490").String()
	gwBackends := gateway.Flag("backend", "name=URL of an issuer; repeat. The first is active at start.").Default("primary=http://127.0.0.1:8481", "standby=http://127.0.0.1:8482").Strings()

	upstream := app.Command("upstream", "The simulated tax platform: receives synced invoices, answers GET /api/v1/verify.")
	upListen := upstream.Flag("web.listen-address", "Public address.").Default(":8483").String()
	upAdmin := upstream.Flag("admin.listen-address", "Loopback admin address (faults).").Default("127.0.0.1:8493").String()
	upDB := upstream.Flag("db", "SQLite file path or PostgreSQL DSN.").Default("data/upstream.db").String()

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "invoice-service: %v (try --help)\n", err)
		return 2
	}
	var out io.Writer = stderr
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(stderr, "invoice-service: %v\n", err)
			return 1
		}
		defer f.Close()
		out = f
	}
	var level slog.Level
	level.UnmarshalText([]byte(*logLevel))
	log := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fail := func(err error) int {
		log.Error("invoice-service failed", "error", err.Error())
		fmt.Fprintf(stderr, "invoice-service: %v\n", err)
		return 1
	}

	switch cmd {
	case demo.FullCommand():
		d, err := platform.StartDemo(ctx, platform.DemoOptions{Host: *demoHost, BasePort: *demoPort, DataDir: *demoData,
			IssuerDSN: *demoDSN, SyncInterval: *demoSync, AmountBasis: *demoBasis, Logger: log})
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stderr, "invoice-service demo: gateway %s, primary %s, standby %s, upstream %s (admin %s..%s)\n",
			d.URL["gateway"], d.URL["primary"], d.URL["standby"], d.URL["upstream"], d.AdminURL["gateway"], d.AdminURL["upstream"])
		log.Info("demo started", "gateway", d.URL["gateway"], "primary", d.URL["primary"], "standby", d.URL["standby"], "upstream", d.URL["upstream"])
		if err := d.Wait(); err != nil {
			return fail(err)
		}
		return 0
	case issuer.FullCommand():
		db, err := platform.OpenDB(ctx, *issDB)
		if err != nil {
			return fail(err)
		}
		defer db.Close()
		iss, err := platform.NewIssuer(ctx, platform.IssuerOptions{Name: *issName, Node: *issNode, Region: *issRegion,
			AmountBasis: *issBasis, DB: db, UpstreamURL: strings.TrimRight(*issUpstream, "/"), SyncInterval: *issSync, Logger: log})
		if err != nil {
			return fail(err)
		}
		go iss.RunSync(ctx)
		return serveRole(ctx, log, *issListen, *issAdmin, iss.Handler(), iss.AdminHandler(), fail)
	case gateway.FullCommand():
		backends := map[string]string{}
		first := ""
		for _, b := range *gwBackends {
			name, u, ok := strings.Cut(b, "=")
			if !ok {
				return fail(fmt.Errorf("--backend %q: want name=URL", b))
			}
			if first == "" {
				first = name
			}
			backends[name] = u
		}
		g, err := platform.NewGateway(backends, first, log)
		if err != nil {
			return fail(err)
		}
		return serveRole(ctx, log, *gwListen, *gwAdmin, g.Handler(), g.AdminHandler(), fail)
	case upstream.FullCommand():
		db, err := platform.OpenDB(ctx, *upDB)
		if err != nil {
			return fail(err)
		}
		defer db.Close()
		u, err := platform.NewUpstream(ctx, db, log)
		if err != nil {
			return fail(err)
		}
		return serveRole(ctx, log, *upListen, *upAdmin, u.Handler(), u.AdminHandler(), fail)
	}
	return 2
}

// serveRole serves the public and admin handlers until ctx ends.
func serveRole(ctx context.Context, log *slog.Logger, listen, admin string, pub, adm http.Handler, fail func(error) int) int {
	host, _, err := net.SplitHostPort(admin)
	if err != nil {
		return fail(fmt.Errorf("--admin.listen-address: %w", err))
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fail(fmt.Errorf("--admin.listen-address %s: admin endpoints listen on loopback only", admin))
	}
	errc := make(chan error, 2)
	for _, s := range []struct {
		addr string
		h    http.Handler
	}{{listen, pub}, {admin, adm}} {
		srv := &http.Server{Addr: s.addr, Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- srv.ListenAndServe() }()
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
	}
	log.Info("listening", "public", listen, "admin", admin)
	select {
	case err := <-errc:
		if err != http.ErrServerClosed {
			return fail(err)
		}
	case <-ctx.Done():
	}
	return 0
}
