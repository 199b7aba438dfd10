// Package cli is vigil's command line (kingpin, in the style of Prometheus
// exporters): run, once, check-config and version.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/vigil-project/vigil/agent"
	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/internal/memtune"
	"github.com/vigil-project/vigil/rules"

	// Every check family registers itself.
	_ "github.com/vigil-project/vigil/probes/all"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailed      = 1 // a check failed, or the agent stopped with an error
	ExitConfigError = 2
)

const appHelp = `vigil checks what an e-invoice platform's operations checklist asks for —
host, database round trips, invoice QR generation, reachability of the tax
authority, logs and upstream sync — exposes it to Prometheus and pages on-call.

Examples:
  vigil run --config.file=examples/vigil.yml     # the daemon on :9877
  vigil once                                     # run every check now, print a table
  vigil once --check host -o json                # one check, JSON for scripts
  vigil check-config /etc/vigil/vigil.yml        # validate a config file
  vigil rules test examples/rules/*.test.yml     # rule unit tests (promtool format)`

type exitCode int

// Run parses args (without the program name) and runs the chosen command.
func Run(args []string, stdout, stderr io.Writer) (code int) {
	app := kingpin.New("vigil", appHelp)
	// Help and version are output asked for: stdout, so `vigil --help | less`
	// works. Errors (and the usage printed with them) go to stderr.
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	app.Version(version.Print("vigil"))
	app.HelpFlag.Short('h')
	// kingpin exits the process on --help, --version and parse errors; turn
	// that into a return value so tests and deferred cleanups still work.
	app.Terminate(func(c int) { panic(exitCode(c)) })
	defer func() {
		if p := recover(); p != nil {
			c, ok := p.(exitCode)
			if !ok {
				panic(p)
			}
			code = int(c)
			if code != 0 {
				code = ExitConfigError
			}
		}
	}()

	logCfg := &promslog.Config{Writer: stderr}
	promslogflag.AddFlags(app, logCfg)

	runCmd := app.Command("run", `Run the agent: schedule checks, serve the status page (/), /metrics and the API.

State-changing calls (run a check, reload, approve, abort, silence, drill)
need a user from --web.config.file's basic_auth_users; without users they are
accepted from localhost only.

Examples:
  vigil run                                      # embedded default config (host checks)
  vigil run --config.file=/etc/vigil/vigil.yml --web.listen-address=:9877
  vigil run --web.config.file=web.yml --web.public-read   # TLS + users; pages and /metrics stay open
  kill -HUP $(pidof vigil)                       # reload the config (or POST /-/reload)`)
	runConfig := runCmd.Flag("config.file", "Config file; without it the embedded default (host checks) is used.").PlaceHolder("FILE").String()
	webFlags := kingpinflag.AddFlags(runCmd, ":9877")
	publicStatus := runCmd.Flag("web.public-status", "Serve the public status page (/status, /api/v1/status: per checklist step state and uptime, SLOs, open incidents' public_summary; no check names, hosts or diagnostics) without a user, even when basic_auth_users are set.").Bool()
	releasePages := runCmd.Flag("memory.release-code-pages", "Hand the executable's resident code and read-only data back to the page cache after start-up, every few minutes and after a page render (MADV_PAGEOUT; Linux). Pages in use fault back in. BENCHMARKS.md shows the footprint with and without.").Default("true").Bool()
	maxRequests := runCmd.Flag("web.max-requests", "Pages and API calls served at once; more are answered 503 with Retry-After (a storm of browser tabs cannot starve the checks). /metrics and the health endpoints are not counted. 0: no bound.").Default("32").Int()
	publicRead := runCmd.Flag("web.public-read", "With basic_auth_users in the web config: still serve the status page, the read-only API and /metrics without a password. State-changing calls always need a user (without users they are accepted from localhost only).").Bool()
	allowedHosts := runCmd.Flag("web.allowed-host", "A Host name the agent answers to besides localhost, IP addresses, its listen addresses and this machine's hostname (repeatable; *.example.com for a domain). Requests for other names are refused with 421: a page that rebinds its name to this machine cannot use the agent (SECURITY.md).").PlaceHolder("NAME").Strings()
	storagePath := runCmd.Flag("storage.path", "SQLite file for check history and agent state.").Default("./data/vigil.db").String()
	retention := model.Duration(0)
	runCmd.Flag("storage.retention", "How long check history is kept.").Default("7d").SetValue(&retention)
	outboxRetention := model.Duration(0)
	runCmd.Flag("storage.outbox-retention", "How long delivered and dead-lettered notifications are kept (GET /api/v1/notifications). Those an incident's timeline shows are kept as long as the incident; pending ones until they are delivered.").Default("7d").SetValue(&outboxRetention)

	onceCmd := app.Command("once", `Run checks now, print the results and exit: 0 if all pass, 1 if any fail, 2 on a config error.

Examples:
  vigil once --config.file=examples/vigil.yml
  vigil once --check host --check tax-authority
  vigil once -v                                  # with traceroute hops of failed network checks
  vigil once -o json | jq '.checks[] | select(.result.success | not)'`)
	onceConfig := onceCmd.Flag("config.file", "Config file; without it the embedded default is used.").PlaceHolder("FILE").String()
	onceChecks := onceCmd.Flag("check", "Run only this check (repeatable).").PlaceHolder("NAME").Strings()
	onceOutput := onceCmd.Flag("output", "Output format.").Short('o').Default("table").Enum("table", "json")
	onceVerbose := onceCmd.Flag("verbose", "Show the diagnostics of failed checks (e.g. traceroute hops) under the table.").Short('v').Bool()

	checkCmd := app.Command("check-config", `Validate config files and print a summary; every problem is listed as file:line:col.

Examples:
  vigil check-config examples/vigil.yml
  vigil check-config /etc/vigil/*.yml`)
	checkFiles := checkCmd.Arg("file", "Config files to check.").Required().ExistingFiles()

	rulesCmd := app.Command("rules", "Check and unit-test Prometheus rule files (like promtool).")
	rulesCheckCmd := rulesCmd.Command("check", `Parse rule files and report every problem; exit 1 on any.

Examples:
  vigil rules check examples/rules/vigil.rules.yml`)
	rulesCheckFiles := rulesCheckCmd.Arg("file", "Rule files.").Required().ExistingFiles()
	rulesTestCmd := rulesCmd.Command("test", `Run rule unit tests written for promtool test rules; exit 1 if any fails.

Examples:
  vigil rules test examples/rules/vigil.rules.test.yml`)
	rulesTestFiles := rulesTestCmd.Arg("file", "Test files (promtool format).").Required().ExistingFiles()

	sloCmd := app.Command("slo", "Service level objectives (slos: in the config).")
	sloRulesCmd := sloCmd.Command("rules", `Print the multiwindow, multi-burn-rate alerting rules of the config's SLOs
(the rules the agent evaluates itself) as a Prometheus rule file, for a
central Prometheus that scrapes vigil.

Examples:
  vigil slo rules examples/vigil.yml > vigil-slos.rules.yml
  vigil slo rules examples/vigil.yml | promtool check rules`)
	sloRulesFile := sloRulesCmd.Arg("file", "Config file.").Required().ExistingFile()

	einvoiceCmd := app.Command("einvoice", "Read e-invoices as the invoice checks do.")
	einvoiceInspectCmd := einvoiceCmd.Command("inspect", `Decode e-invoices — PNG/JPEG images, PDF, OFD, XML files or raw QR payloads — and
print their fields (type and its name, number, date, amount and its basis, check code), the
invoice data an OFD or XML embeds, and every problem. Exit 0 when all are valid, 1 when one is
invalid, 2 when one cannot be read.

Examples:
  vigil einvoice inspect invoice.pdf invoice.ofd
  vigil einvoice inspect '01,32,,24442000000006227878,1009.00,20240112,,A1D6'
  vigil einvoice inspect -o json *.ofd | jq '.[].problems'`)
	einvoiceInputs := einvoiceInspectCmd.Arg("input", "Files or QR payloads.").Required().Strings()
	einvoiceOutput := einvoiceInspectCmd.Flag("output", "Output format.").Short('o').Default("table").Enum("table", "json")

	silenceCmd := app.Command("silence", "Mute alerts for a while through a running agent's API (time-bounded, with author and comment).")
	agentURL := silenceCmd.Flag("agent.url", "Address of the running agent's API. With users configured, log in with $VIGIL_AGENT_USER and $VIGIL_AGENT_PASSWORD.").Default("http://127.0.0.1:9877").String()
	silenceAddCmd := silenceCmd.Command("add", `Add a silence for alerts matching every matcher.

Examples:
  vigil silence add 'check="invoice-qr"' --duration=2h --comment="issuer maintenance, ticket OPS-123"
  vigil silence add 'alertname=~"Invoice.*"' 'site="sh"' -d 30m -c "failover drill" --author=li.wei`)
	silenceMatchers := silenceAddCmd.Arg("matcher", `Label matchers: name="value", name!="value", name=~"regex", name!~"regex".`).Required().Strings()
	silenceDuration := silenceAddCmd.Flag("duration", "How long the silence lasts (at most 30d).").Short('d').Default("1h").Duration()
	silenceAuthor := silenceAddCmd.Flag("author", "Who creates the silence (default: $USER).").Short('a').Default(os.Getenv("USER")).String()
	silenceComment := silenceAddCmd.Flag("comment", "Why (required).").Short('c').Required().String()
	silenceListCmd := silenceCmd.Command("list", `List active and pending silences.

Examples:
  vigil silence list
  vigil silence list --all          # with silences expired in the last day`)
	silenceAll := silenceListCmd.Flag("all", "Include recently expired silences.").Bool()
	silenceExpireCmd := silenceCmd.Command("expire", `End silences now.

Examples:
  vigil silence expire 3f9c0a1b2c3d4e5f`)
	silenceIDs := silenceExpireCmd.Arg("id", "Silence IDs.").Required().Strings()

	notifyCmd := app.Command("notify", "Paging through a running agent's API.")
	notifyURL := notifyCmd.Flag("agent.url", "Address of the running agent's API. With users configured, log in with $VIGIL_AGENT_USER and $VIGIL_AGENT_PASSWORD.").Default("http://127.0.0.1:9877").String()
	notifyTestCmd := notifyCmd.Command("test", `Send a labelled test page (alertname="VigilTestNotification", test="true") to a
receiver through the agent's real pipeline — its templates, outbox, retries and
credentials — and print what each of its integrations answered. Exit 0 when
every integration acknowledged it, 1 otherwise. "alertmanager" tests the
Alertmanager peers (their routes decide who gets it).

Examples:
  vigil notify test oncall
  vigil notify test alertmanager --wait=1m`)
	notifyTestReceiver := notifyTestCmd.Arg("receiver", "A receiver of notify.receivers, or alertmanager.").Required().String()
	notifyTestWait := notifyTestCmd.Flag("wait", "How long to wait for the outcome (at most 2m); a page still being retried then is reported pending.").Default("20s").Duration()
	notifyTestBy := notifyTestCmd.Flag("by", "Who sends the test (default: $USER).").Default(os.Getenv("USER")).String()

	rbCmd := app.Command("runbook", "Runbooks through a running agent's API: runs, timelines, manual triggers, approvals, aborts, cooldown acks, pause.")
	rbURL := rbCmd.Flag("agent.url", "Address of the running agent's API. With users configured, log in with $VIGIL_AGENT_USER and $VIGIL_AGENT_PASSWORD.").Default("http://127.0.0.1:9877").String()
	rbBy := rbCmd.Flag("by", "Who you are, recorded in the journal (default: $USER).").Default(os.Getenv("USER")).String()
	rbRunsCmd := rbCmd.Command("runs", `List runs, newest first.

Examples:
  vigil runbook runs
  vigil runbook runs --state=waiting_approval`)
	rbRunsState := rbRunsCmd.Flag("state", "Only runs in this state (running, waiting_approval, blocked, interrupted, succeeded, failed, rolled_back, ...).").String()
	rbRunsLimit := rbRunsCmd.Flag("limit", "How many.").Default("50").Int()
	rbShowCmd := rbCmd.Command("show", `Show a run's timeline: every step attempt with its rendered inputs, output and duration.

Examples:
  vigil runbook show 20261123T090337-3f9c0a1b2c3d`)
	rbShowID := rbShowCmd.Arg("id", "Run ID.").Required().String()
	rbTriggerCmd := rbCmd.Command("trigger", `Run a runbook now with the given labels (as if an alert carried them).

Examples:
  vigil runbook trigger invoice-failover platform=e-invoice check=invoice_qr
  vigil runbook trigger invoice-failover --mode=dry_run      # record the rendered plan, run nothing`)
	rbTriggerName := rbTriggerCmd.Arg("runbook", "Runbook name.").Required().String()
	rbTriggerLabels := rbTriggerCmd.Arg("label", "name=value labels.").Strings()
	rbTriggerMode := rbTriggerCmd.Flag("mode", "Override the runbook's mode.").Enum("enforce", "approve", "dry_run")
	rbApproveCmd := rbCmd.Command("approve", "Approve a run waiting for a person.\n\nExamples:\n  vigil runbook approve RUN_ID --by=li.wei")
	rbApproveID := rbApproveCmd.Arg("id", "Run ID.").Required().String()
	rbRejectCmd := rbCmd.Command("reject", "Reject a run waiting for a person.\n\nExamples:\n  vigil runbook reject RUN_ID")
	rbRejectID := rbRejectCmd.Arg("id", "Run ID.").Required().String()
	rbAbortCmd := rbCmd.Command("abort", "Stop a run before its next step.\n\nExamples:\n  vigil runbook abort RUN_ID")
	rbAbortID := rbAbortCmd.Arg("id", "Run ID.").Required().String()
	rbAckCmd := rbCmd.Command("ack", "End a runbook's cooldown for a target so the next trigger runs.\n\nExamples:\n  vigil runbook ack invoice-failover e-invoice")
	rbAckName := rbAckCmd.Arg("runbook", "Runbook name.").Required().String()
	rbAckTarget := rbAckCmd.Arg("target", "Target (default: the runbook name).").String()
	rbPauseCmd := rbCmd.Command("pause", "Stop every runbook from starting (runs in progress continue).\n\nExamples:\n  vigil runbook pause --by=li.wei")
	rbResumeCmd := rbCmd.Command("resume", "Let runbooks start again.\n\nExamples:\n  vigil runbook resume")

	drCmd := app.Command("drill", "Incident drills through a running agent's API: run one with live progress, list, show reports, history percentiles.")
	drURL := drCmd.Flag("agent.url", "Address of the running agent's API. With users configured, log in with $VIGIL_AGENT_USER and $VIGIL_AGENT_PASSWORD.").Default("http://127.0.0.1:9877").String()
	drBy := drCmd.Flag("by", "Who runs the drill, recorded with it (default: $USER).").Default(os.Getenv("USER")).String()
	drRunCmd := drCmd.Command("run", `Run a drill: steady state, inject the fault, measure detect, page, failover and
recover from real events, roll back (always, also on Ctrl-C), report. Exits 0
when every objective passed and the steady state came back.

Examples:
  vigil drill run examples/drills/invoice-qr-failover.yml
  vigil drill run invoice-qr-failover     # a drill the agent loaded (drills: in its config)`)
	drRunFile := drRunCmd.Arg("drill", "Drill file, or the name of a loaded drill.").Required().String()
	drListCmd := drCmd.Command("list", "List the loaded drills, the running one and recent runs.\n\nExamples:\n  vigil drill list")
	drShowCmd := drCmd.Command("show", "Show a drill run's report (Markdown; --json for JSON).\n\nExamples:\n  vigil drill show DRILL_RUN_ID")
	drShowID := drShowCmd.Arg("id", "Drill run ID.").Required().String()
	drShowJSON := drShowCmd.Flag("json", "Print the JSON report.").Bool()
	drHistoryCmd := drCmd.Command("history", "p50, p90 and max of each measure across past drill runs.\n\nExamples:\n  vigil drill history invoice-qr-failover")
	drHistoryName := drHistoryCmd.Arg("drill", "Drill name (default: all).").String()

	storeCmd := app.Command("store", "Examine or repair the agent's SQLite store (stop the agent first for recover).")
	storeCheckCmd := storeCmd.Command("check", `Run SQLite's quick_check on the store; exit 0 if sound, 1 if damaged.

Examples:
  vigil store check --storage.path=/var/lib/vigil/vigil.db
  vigil store check --full --storage.path=./data/vigil.db   # integrity_check: indexes too, slower`)
	storeCheckPath := storeCheckCmd.Flag("storage.path", "SQLite file of the agent.").Default("./data/vigil.db").String()
	storeCheckFull := storeCheckCmd.Flag("full", "Run integrity_check, which also compares indexes with their tables.").Bool()
	storeRecoverCmd := storeCmd.Command("recover", `Move a damaged store aside (to FILE.damaged-TIME, kept) and start a new one with every row that can still be read.
The agent refuses to start on a damaged store and names this command. Stop the agent first.

Examples:
  vigil store recover --storage.path=/var/lib/vigil/vigil.db`)
	storeRecoverPath := storeRecoverCmd.Flag("storage.path", "SQLite file of the agent.").Default("./data/vigil.db").String()

	completionCmd := app.Command("completion", `Print a shell completion script for bash, zsh or fish.

The deb and rpm packages install them. Examples:
  vigil completion bash > /etc/bash_completion.d/vigil
  vigil completion zsh > "${fpath[1]}/_vigil"
  vigil completion fish > ~/.config/fish/completions/vigil.fish`)
	completionShell := completionCmd.Arg("shell", "bash, zsh or fish.").Required().Enum("bash", "zsh", "fish")

	versionCmd := app.Command("version", `Print the version, revision and build details.

Examples:
  vigil version`)

	// --help-man is kingpin's flag, rendered here: see manTemplate.
	if slices.Contains(args, "--help-man") {
		if err := writeManPage(app, stdout); err != nil {
			fmt.Fprintf(stderr, "vigil: man page: %v\n", err)
			return ExitConfigError
		}
		return ExitOK
	}
	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "vigil: %v (see vigil --help)\n", err)
		return ExitConfigError
	}
	log := promslog.New(logCfg)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case runCmd.FullCommand():
		return runAgent(ctx, stderr, log, agent.Options{
			ConfigFile:      *runConfig,
			StoragePath:     *storagePath,
			Retention:       time.Duration(retention),
			OutboxRetention: time.Duration(outboxRetention),
			Logger:          log,
			Web:             webFlags,
			PublicRead:      *publicRead,
			MaxRequests:     *maxRequests,
			PublicStatus:    *publicStatus,
			KeepCodePages:   !*releasePages,
			AllowedHosts:    *allowedHosts,
		})
	case onceCmd.FullCommand():
		return once(ctx, stdout, stderr, log, onceOptions{file: *onceConfig, only: *onceChecks, output: *onceOutput, verbose: *onceVerbose})
	case checkCmd.FullCommand():
		return checkConfig(stdout, stderr, *checkFiles)
	case rulesCheckCmd.FullCommand():
		return checkRules(stdout, stderr, *rulesCheckFiles)
	case sloRulesCmd.FullCommand():
		return sloRules(stdout, stderr, *sloRulesFile)
	case rulesTestCmd.FullCommand():
		if !rules.TestFiles(stdout, stderr, *rulesTestFiles...) {
			return ExitFailed
		}
		return ExitOK
	case einvoiceInspectCmd.FullCommand():
		return einvoiceInspect(stdout, stderr, *einvoiceInputs, *einvoiceOutput)
	case silenceAddCmd.FullCommand():
		author := *silenceAuthor
		if author == "" {
			author = "unknown"
		}
		return silenceAdd(ctx, stdout, stderr, *agentURL, *silenceMatchers, *silenceDuration, author, *silenceComment)
	case silenceListCmd.FullCommand():
		return silenceList(ctx, stdout, stderr, *agentURL, *silenceAll)
	case silenceExpireCmd.FullCommand():
		return silenceExpire(ctx, stdout, stderr, *agentURL, *silenceIDs)
	case rbRunsCmd.FullCommand(), rbShowCmd.FullCommand(), rbTriggerCmd.FullCommand(), rbApproveCmd.FullCommand(), rbRejectCmd.FullCommand(),
		rbAbortCmd.FullCommand(), rbAckCmd.FullCommand(), rbPauseCmd.FullCommand(), rbResumeCmd.FullCommand():
		by := *rbBy
		if by == "" {
			by = "unknown"
		}
		rc := runbookCmd{agentURL: strings.TrimSuffix(*rbURL, "/"), by: by, stdout: stdout, stderr: stderr}
		switch cmd {
		case rbRunsCmd.FullCommand():
			return rc.runs(ctx, *rbRunsState, *rbRunsLimit)
		case rbShowCmd.FullCommand():
			return rc.show(ctx, *rbShowID)
		case rbTriggerCmd.FullCommand():
			lbls, err := parseLabels(*rbTriggerLabels)
			if err != nil {
				return rc.fail("trigger", err)
			}
			return rc.post(ctx, "trigger", "/api/v1/runbooks/"+*rbTriggerName+"/trigger", client.ActionRequest{Labels: lbls, Mode: *rbTriggerMode})
		case rbApproveCmd.FullCommand():
			return rc.post(ctx, "approve", "/api/v1/runbooks/runs/"+*rbApproveID+"/approve", client.ActionRequest{})
		case rbRejectCmd.FullCommand():
			return rc.post(ctx, "reject", "/api/v1/runbooks/runs/"+*rbRejectID+"/reject", client.ActionRequest{})
		case rbAbortCmd.FullCommand():
			return rc.post(ctx, "abort", "/api/v1/runbooks/runs/"+*rbAbortID+"/abort", client.ActionRequest{})
		case rbAckCmd.FullCommand():
			return rc.post(ctx, "ack", "/api/v1/runbooks/"+*rbAckName+"/ack", client.ActionRequest{Target: *rbAckTarget})
		case rbPauseCmd.FullCommand():
			return rc.post(ctx, "pause", "/api/v1/runbooks/pause", client.ActionRequest{})
		default:
			return rc.post(ctx, "resume", "/api/v1/runbooks/resume", client.ActionRequest{})
		}
	case drRunCmd.FullCommand(), drListCmd.FullCommand(), drShowCmd.FullCommand(), drHistoryCmd.FullCommand():
		by := *drBy
		if by == "" {
			by = "unknown"
		}
		dc := drillCmd{agentURL: strings.TrimSuffix(*drURL, "/"), by: by, stdout: stdout, stderr: stderr}
		switch cmd {
		case drRunCmd.FullCommand():
			return dc.run(ctx, *drRunFile)
		case drListCmd.FullCommand():
			return dc.list(ctx)
		case drShowCmd.FullCommand():
			return dc.show(ctx, *drShowID, *drShowJSON)
		default:
			return dc.history(ctx, *drHistoryName)
		}
	case notifyTestCmd.FullCommand():
		return notifyTest(ctx, stdout, stderr, *notifyURL, *notifyTestReceiver, *notifyTestBy, *notifyTestWait)
	case storeCheckCmd.FullCommand():
		return storeCheck(ctx, stdout, stderr, *storeCheckPath, *storeCheckFull)
	case storeRecoverCmd.FullCommand():
		return storeRecover(ctx, stdout, stderr, *storeRecoverPath)
	case completionCmd.FullCommand():
		if err := writeCompletion(app, *completionShell, stdout); err != nil {
			fmt.Fprintf(stderr, "vigil: completion: %v\n", err)
			return ExitConfigError
		}
	case versionCmd.FullCommand():
		fmt.Fprintln(stdout, version.Print("vigil"))
	}
	return ExitOK
}

func runAgent(ctx context.Context, stderr io.Writer, log *slog.Logger, opts agent.Options) int {
	// The heap headroom for the config's size is set once it is loaded;
	// until then, an idle agent's.
	memtune.TuneGC(0)
	if opts.ConfigFile == "" {
		log.Info("no --config.file given; using the embedded default config (host checks)")
	}
	a, err := agent.New(ctx, opts)
	if err != nil {
		var cerr config.Errors
		if errors.As(err, &cerr) {
			fmt.Fprintln(stderr, cerr.Error())
			return ExitConfigError
		}
		log.Error("cannot start", "err", err)
		return ExitFailed
	}
	if err := a.Run(ctx); err != nil {
		log.Error("agent stopped", "err", err)
		return ExitFailed
	}
	return ExitOK
}
