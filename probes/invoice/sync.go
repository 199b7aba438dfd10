package invoice

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql" // SQL source: mysql
	_ "github.com/jackc/pgx/v5/stdlib" // SQL source: postgres
	"github.com/ohler55/ojg/jp"
	"github.com/prometheus/common/model"
	_ "modernc.org/sqlite" // SQL source: sqlite

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/invoice/einvoice"
)

func init() {
	probes.Register(probes.Family{Type: "invoice_sync", Step: probes.StepSync, NewConfig: func() probes.Config { return defaultSyncConfig() }, New: newSync,
		Metrics: []probes.Metric{
			{Name: "vigil_invoice_sync_window_invoices", Help: "Local invoices in the window of the last run, before sampling."},
			{Name: "vigil_invoice_sync_checked", Help: "Invoices verified upstream in the last run."},
			{Name: "vigil_invoice_sync_missing", Help: "Invoices of the last run the upstream does not have."},
			{Name: "vigil_invoice_sync_mismatched", Help: "Invoices of the last run the upstream has with another amount or date."},
			{Name: "vigil_invoice_sync_unverified", Help: "Invoices of the last run that could not be verified (upstream errors)."},
			{Name: "vigil_invoice_sync_lag_seconds", Help: "Age of the oldest invoice missing upstream (the sync lag); 0 when none is missing."},
			{Name: "vigil_invoice_sync_verify_latency_seconds", Help: "Upstream verification latency of the last run: median (stat=\"median\") and slowest (stat=\"max\"). A gauge: the quantile label would make it a summary."},
		}})
}

// SyncConfig is the `invoice_sync:` section of a check.
type SyncConfig struct {
	Source   SourceConfig   `yaml:"source"`
	Upstream UpstreamConfig `yaml:"upstream"`
	// Window: invoices issued within it (and older than Grace) are checked.
	Window model.Duration `yaml:"window"`
	// Grace is how long a normal sync may take.
	Grace model.Duration `yaml:"grace"`
	// MaxInvoices caps the verifications per run; more are sampled.
	MaxInvoices int `yaml:"max_invoices"`
	Concurrency int `yaml:"concurrency"`
	// MaxMissing missing invoices are tolerated (default 0).
	MaxMissing int `yaml:"max_missing"`
}

// SourceConfig is where the local invoices come from: the issuing API or
// the invoice database. Exactly one is set.
type SourceConfig struct {
	API *APISource `yaml:"api,omitempty"`
	SQL *SQLSource `yaml:"sql,omitempty"`
}

// APISource lists invoices through the issuing API.
type APISource struct {
	HTTPClientConfig `yaml:",inline"`
	// ListPath with {after}, {before} (RFC 3339) and {limit}.
	ListPath string `yaml:"list_path"`
	// Items is the JSONPath of the invoice list; Fields are JSONPaths
	// within one item: number, amount, issued_at.
	Items  string            `yaml:"items"`
	Fields map[string]string `yaml:"fields"`
	// Limit is the most invoices asked for per run.
	Limit int `yaml:"limit"`
}

// SQLSource reads invoices from the database. The query returns number,
// amount (yuan) and issue time, in that order; rows outside the window are
// skipped, but the query should limit itself too.
type SQLSource struct {
	Driver string         `yaml:"driver"` // postgres, mysql or sqlite
	DSN    confkit.Secret `yaml:"dsn,omitempty"`
	Path   string         `yaml:"path,omitempty"` // sqlite, opened read-only
	Query  string         `yaml:"query"`
}

// UpstreamConfig is the tax platform's verification API.
type UpstreamConfig struct {
	HTTPClientConfig `yaml:",inline"`
	// VerifyPath with {number}.
	VerifyPath string `yaml:"verify_path"`
	// Fields are JSONPaths in the answer: found (boolean), amount, date
	// (YYYYMMDD or RFC 3339). A 404 means not found.
	Fields map[string]string `yaml:"fields"`
}

func defaultSyncConfig() *SyncConfig {
	return &SyncConfig{
		Upstream: UpstreamConfig{
			HTTPClientConfig: HTTPClientConfig{MaxBodyBytes: 1 << 20},
			VerifyPath:       "/api/v1/verify?number={number}",
		},
		Window:      model.Duration(time.Hour),
		Grace:       model.Duration(2 * time.Minute),
		MaxInvoices: 50,
		Concurrency: 4,
	}
}

var (
	apiSourceFields       = []string{"number", "amount", "issued_at"}
	upstreamFields        = []string{"found", "amount", "date"}
	defaultAPISourceField = map[string]string{"number": "$.number", "amount": "$.totals.including_tax", "issued_at": "$.issued_at"}
	defaultUpstreamFields = map[string]string{"found": "$.found", "amount": "$.amount_including_tax", "date": "$.date"}
)

func defaultAPISource(a *APISource) {
	if a.MaxBodyBytes == 0 {
		a.MaxBodyBytes = 16 << 20
	}
	if a.ListPath == "" {
		a.ListPath = "/api/v1/invoices?issued_after={after}&issued_before={before}&limit={limit}"
	}
	if a.Items == "" {
		a.Items = "$.invoices[*]"
	}
	if a.Limit == 0 {
		a.Limit = 1000
	}
}

// Validate reports every problem as a FieldError.
func (c *SyncConfig) Validate() error {
	var errs []error
	switch {
	case c.Source.API == nil && c.Source.SQL == nil:
		errs = append(errs, confkit.FieldErrorf("source", "set api or sql"))
	case c.Source.API != nil && c.Source.SQL != nil:
		errs = append(errs, confkit.FieldErrorf("source", "set api or sql, not both"))
	case c.Source.API != nil:
		a := c.Source.API
		defaultAPISource(a)
		errs = append(errs, a.validate("source.api.")...)
		if !strings.HasPrefix(a.ListPath, "/") {
			errs = append(errs, confkit.FieldErrorf("source.api.list_path", "must start with /"))
		}
		if _, err := jp.ParseString(a.Items); err != nil {
			errs = append(errs, confkit.FieldErrorf("source.api.items", "invalid JSONPath %q", a.Items))
		}
		errs = append(errs, checkFieldNames(a.Fields, apiSourceFields, "source.api.fields")...)
		if a.Limit < 1 {
			errs = append(errs, confkit.FieldErrorf("source.api.limit", "must be positive"))
		}
	default:
		s := c.Source.SQL
		switch s.Driver {
		case "postgres", "mysql":
			if !s.DSN.IsSet() {
				errs = append(errs, confkit.FieldErrorf("source.sql.dsn", "required for %s (from an environment variable, e.g. ${INVOICE_DB_DSN})", s.Driver))
			}
		case "sqlite":
			if s.Path == "" {
				errs = append(errs, confkit.FieldErrorf("source.sql.path", "required for sqlite"))
			}
		default:
			errs = append(errs, confkit.FieldErrorf("source.sql.driver", "must be postgres, mysql or sqlite, got %q", s.Driver))
		}
		if strings.TrimSpace(s.Query) == "" {
			errs = append(errs, confkit.FieldErrorf("source.sql.query", "required: SELECT number, amount, issued_at ..."))
		}
	}
	errs = append(errs, c.Upstream.validate("upstream.")...)
	if !strings.HasPrefix(c.Upstream.VerifyPath, "/") || !strings.Contains(c.Upstream.VerifyPath, "{number}") {
		errs = append(errs, confkit.FieldErrorf("upstream.verify_path", "must start with / and contain {number}"))
	}
	errs = append(errs, checkFieldNames(c.Upstream.Fields, upstreamFields, "upstream.fields")...)
	if c.Window <= 0 {
		errs = append(errs, confkit.FieldErrorf("window", "must be positive"))
	}
	if c.Grace < 0 || c.Grace >= c.Window {
		errs = append(errs, confkit.FieldErrorf("grace", "must be between 0 and the window (%s)", c.Window))
	}
	if c.MaxInvoices < 1 || c.MaxInvoices > 10000 {
		errs = append(errs, confkit.FieldErrorf("max_invoices", "must be 1–10000"))
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		errs = append(errs, confkit.FieldErrorf("concurrency", "must be 1–64"))
	}
	if c.MaxMissing < 0 {
		errs = append(errs, confkit.FieldErrorf("max_missing", "must not be negative"))
	}
	return errors.Join(errs...)
}

// checkFieldNames reports unknown names and invalid JSONPaths among the
// configured fields (the rest come from defaults).
func checkFieldNames(fields map[string]string, known []string, prefix string) []error {
	var errs []error
	for n := range fields {
		if !slices.Contains(known, n) {
			errs = append(errs, confkit.FieldErrorf(prefix+"."+n, "unknown field (known: %s)", strings.Join(known, ", ")))
		}
	}
	_, ferrs := compileFields(fields, prefix+".")
	return append(errs, ferrs...)
}

// Sync is the invoice_sync check.
type Sync struct {
	cfg      *SyncConfig
	source   *apiClient
	srcItems jp.Expr
	srcField jsonFields
	upstream *apiClient
	upField  jsonFields
}

var _ probes.Prober = (*Sync)(nil)

func newSync(c probes.Config, _ probes.Options) (probes.Prober, error) {
	cfg, ok := c.(*SyncConfig)
	if !ok {
		return nil, fmt.Errorf("invoice_sync: config of type %T", c)
	}
	s := &Sync{cfg: cfg}
	var err error
	if a := cfg.Source.API; a != nil {
		if s.source, err = newAPIClient(&a.HTTPClientConfig); err != nil {
			return nil, err
		}
		s.srcItems = jp.MustParseString(a.Items)
		s.srcField, _ = compileFields(withDefaults(a.Fields, defaultAPISourceField), "")
	}
	if s.upstream, err = newAPIClient(&cfg.Upstream.HTTPClientConfig); err != nil {
		return nil, err
	}
	s.upField, _ = compileFields(withDefaults(cfg.Upstream.Fields, defaultUpstreamFields), "")
	return s, nil
}

// localInvoice is one invoice as the issuing side records it.
type localInvoice struct {
	number   string
	amount   einvoice.Fen
	issuedAt time.Time
}

// outcome of verifying one invoice upstream.
type outcome struct {
	inv      localInvoice
	missing  bool
	mismatch string
	err      error
	latency  time.Duration
}

// Probe reconciles recent local invoices with the upstream.
func (s *Sync) Probe(ctx context.Context, log *slog.Logger) probes.Result {
	var res probes.Result
	now := time.Now()
	after, before := now.Add(-time.Duration(s.cfg.Window)), now.Add(-time.Duration(s.cfg.Grace))

	start := time.Now()
	local, err := s.list(ctx, after, before)
	res.AddPhase("source", start)
	if err != nil {
		reason := probes.ReasonSourceError
		if isTimeout(ctx, err) {
			reason = probes.ReasonTimeout
		}
		res.Reason, res.Message = reason, "list local invoices: "+err.Error()
		return res
	}
	inWindow := len(local)
	if len(local) > s.cfg.MaxInvoices {
		rand.Shuffle(len(local), func(i, j int) { local[i], local[j] = local[j], local[i] })
		local = local[:s.cfg.MaxInvoices]
	}

	start = time.Now()
	outcomes := s.verifyAll(ctx, local)
	res.AddPhase("verify", start)

	var missing, mismatched, unverified []outcome
	var lats []time.Duration
	for _, o := range outcomes {
		switch {
		case o.err != nil:
			unverified = append(unverified, o)
			continue
		case o.missing:
			missing = append(missing, o)
		case o.mismatch != "":
			mismatched = append(mismatched, o)
		}
		lats = append(lats, o.latency)
	}
	lag := 0.0
	for _, o := range missing {
		lag = max(lag, now.Sub(o.inv.issuedAt).Seconds())
	}
	res.AddValue("vigil_invoice_sync_window_invoices", float64(inWindow))
	res.AddKeyValue("vigil_invoice_sync_checked", float64(len(outcomes)))
	res.AddKeyValue("vigil_invoice_sync_missing", float64(len(missing)))
	res.AddValue("vigil_invoice_sync_mismatched", float64(len(mismatched)))
	res.AddValue("vigil_invoice_sync_unverified", float64(len(unverified)))
	res.AddKeyValue("vigil_invoice_sync_lag_seconds", lag)
	if len(lats) > 0 {
		slices.Sort(lats)
		res.AddValue("vigil_invoice_sync_verify_latency_seconds", lats[len(lats)/2].Seconds(), probes.Label{Name: "stat", Value: "median"})
		res.AddValue("vigil_invoice_sync_verify_latency_seconds", lats[len(lats)-1].Seconds(), probes.Label{Name: "stat", Value: "max"})
	}

	sampled := ""
	if inWindow > len(outcomes) {
		sampled = fmt.Sprintf(" (sampled from %d)", inWindow)
	}
	switch {
	case len(missing) > s.cfg.MaxMissing:
		res.Reason = probes.ReasonInvoicesMissingUpstream
		res.Message = fmt.Sprintf("%d of %d invoices%s missing upstream, oldest issued %s ago: %s",
			len(missing), len(outcomes), sampled, time.Duration(lag*float64(time.Second)).Round(time.Second), listNumbers(missing))
	case len(mismatched) > 0:
		res.Reason = probes.ReasonUpstreamMismatch
		res.Message = fmt.Sprintf("%d of %d invoices%s differ upstream: %s", len(mismatched), len(outcomes), sampled, mismatched[0].mismatch)
		if len(mismatched) > 1 {
			res.Message += "; also " + listNumbers(mismatched[1:])
		}
	case len(unverified) > 0:
		reason := probes.ReasonUpstreamUnreachable
		if isTimeout(ctx, unverified[0].err) && ctx.Err() != nil {
			reason = probes.ReasonTimeout
		}
		res.Reason = reason
		res.Message = fmt.Sprintf("%d of %d invoices could not be verified upstream: %v", len(unverified), len(outcomes), unverified[0].err)
	default:
		res.Success = true
		res.Message = fmt.Sprintf("%d invoices%s issued between %s and %s ago all present upstream",
			len(outcomes), sampled, time.Duration(s.cfg.Window), time.Duration(s.cfg.Grace))
	}
	return res
}

// listNumbers names up to 10 invoices.
func listNumbers(os []outcome) string {
	var b strings.Builder
	for i, o := range os {
		if i == 10 {
			fmt.Fprintf(&b, " and %d more", len(os)-10)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(o.inv.number)
	}
	return b.String()
}

func (s *Sync) verifyAll(ctx context.Context, local []localInvoice) []outcome {
	out := make([]outcome, len(local))
	sem := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, inv := range local {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = s.verify(ctx, inv)
		}()
	}
	wg.Wait()
	return out
}

func (s *Sync) verify(ctx context.Context, inv localInvoice) outcome {
	o := outcome{inv: inv}
	start := time.Now()
	resp, err := s.upstream.do(ctx, http.MethodGet, strings.ReplaceAll(s.cfg.Upstream.VerifyPath, "{number}", url.QueryEscape(inv.number)), nil)
	o.latency = time.Since(start)
	var ae *errAPI
	if errors.As(err, &ae) && ae.status == http.StatusNotFound {
		o.missing = true
		return o
	}
	if err != nil {
		o.err = fmt.Errorf("verify %s: %w", inv.number, err)
		return o
	}
	doc, err := parseJSON(resp.body)
	if err != nil {
		o.err = fmt.Errorf("verify %s: %w", inv.number, err)
		return o
	}
	if found, _ := s.upField.str(doc, "found"); found != "true" {
		o.missing = true
		return o
	}
	amt, _ := s.upField.str(doc, "amount")
	if got, err := einvoice.ParseFen(amt); err != nil || got != inv.amount {
		o.mismatch = fmt.Sprintf("%s: amount upstream %q, local %s", inv.number, amt, inv.amount)
		return o
	}
	date, _ := s.upField.str(doc, "date")
	if t, err := time.Parse(time.RFC3339Nano, date); err == nil {
		date = t.In(chinaTime).Format("20060102")
	}
	if want := inv.issuedAt.In(chinaTime).Format("20060102"); date != want {
		o.mismatch = fmt.Sprintf("%s: date upstream %q, local %s", inv.number, date, want)
	}
	return o
}

// list returns local invoices issued in (after, before].
func (s *Sync) list(ctx context.Context, after, before time.Time) ([]localInvoice, error) {
	var raw [][3]any
	var err error
	if s.source != nil {
		raw, err = s.listAPI(ctx, after, before)
	} else {
		raw, err = s.listSQL(ctx)
	}
	if err != nil {
		return nil, err
	}
	var out []localInvoice
	for i, r := range raw {
		inv, err := toLocal(r)
		if err != nil {
			return nil, fmt.Errorf("invoice %d: %w", i+1, err)
		}
		if inv.issuedAt.After(after) && !inv.issuedAt.After(before) {
			out = append(out, inv)
		}
	}
	return out, nil
}

func (s *Sync) listAPI(ctx context.Context, after, before time.Time) ([][3]any, error) {
	a := s.cfg.Source.API
	path := strings.NewReplacer("{after}", url.QueryEscape(after.Format(time.RFC3339Nano)),
		"{before}", url.QueryEscape(before.Format(time.RFC3339Nano)), "{limit}", strconv.Itoa(a.Limit)).Replace(a.ListPath)
	resp, err := s.source.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	doc, err := parseJSON(resp.body)
	if err != nil {
		return nil, err
	}
	var out [][3]any
	for _, item := range s.srcItems.Get(doc) {
		var row [3]any
		for i, f := range apiSourceFields {
			v, _ := s.srcField.str(item, f)
			row[i] = v
		}
		out = append(out, row)
	}
	return out, nil
}

func (s *Sync) listSQL(ctx context.Context) ([][3]any, error) {
	src := s.cfg.Source.SQL
	var db *sql.DB
	var err error
	switch src.Driver {
	case "postgres":
		db, err = sql.Open("pgx", src.DSN.Reveal())
	case "mysql":
		db, err = sql.Open("mysql", src.DSN.Reveal())
	default:
		db, err = sql.Open("sqlite", "file:"+src.Path+"?mode=ro&_pragma=busy_timeout(5000)")
	}
	if err != nil {
		return nil, errors.New("open database: invalid DSN") // the DSN may hold a password
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, src.Query)
	if err != nil {
		return nil, fmt.Errorf("query: %s", scrub(err.Error(), src.DSN.Reveal()))
	}
	defer rows.Close()
	if cols, _ := rows.Columns(); len(cols) != 3 {
		return nil, fmt.Errorf("query returns %d columns; it must return number, amount, issued_at", len(cols))
	}
	var out [][3]any
	for rows.Next() {
		var r [3]any
		if err := rows.Scan(&r[0], &r[1], &r[2]); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query: %s", scrub(err.Error(), src.DSN.Reveal()))
	}
	return out, nil
}

// scrub removes a DSN's password from a driver message.
func scrub(msg, dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "***")
		}
	}
	return msg
}

// toLocal converts a source row (strings from the API, driver values from SQL).
func toLocal(r [3]any) (localInvoice, error) {
	var inv localInvoice
	inv.number = strings.TrimSpace(asString(r[0]))
	if inv.number == "" {
		return inv, errors.New("empty invoice number")
	}
	var err error
	switch v := r[1].(type) {
	case float64:
		inv.amount = einvoice.RoundFen(new(big.Rat).SetFloat64(v))
	case int64:
		inv.amount = einvoice.Fen(v * 100)
	default:
		if inv.amount, err = einvoice.ParseFen(normalizeAmount(asString(v))); err != nil {
			return inv, fmt.Errorf("%s: amount: %w", inv.number, err)
		}
	}
	if inv.issuedAt, err = asTime(r[2]); err != nil {
		return inv, fmt.Errorf("%s: issued_at: %w", inv.number, err)
	}
	return inv, nil
}

// normalizeAmount trims trailing zeros beyond two decimals ("1.1300" from a
// NUMERIC column).
func normalizeAmount(s string) string {
	s = strings.TrimSpace(s)
	if whole, frac, ok := strings.Cut(s, "."); ok && len(frac) > 2 {
		trimmed := strings.TrimRight(frac, "0")
		if len(trimmed) <= 2 {
			return whole + "." + frac[:2]
		}
	}
	return s
}

func asString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	default:
		return fmt.Sprint(x)
	}
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"}

// asTime accepts a driver time, RFC 3339 or SQL text (without a zone it is
// China time), or Unix seconds or milliseconds.
func asTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case int64:
		if x > 1e12 {
			return time.UnixMilli(x), nil
		}
		return time.Unix(x, 0), nil
	}
	s := strings.TrimSpace(asString(v))
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, chinaTime); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time", s)
}
