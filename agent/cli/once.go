package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-project/vigil/agent/checkstate"
	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/drill"
	"github.com/vigil-project/vigil/agent/paging"
	"github.com/vigil-project/vigil/agent/ruleeval"
	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/agent/slo"
	"github.com/vigil-project/vigil/probes"
)

type onceCheck struct {
	Name   string            `json:"name"`
	Type   string            `json:"type"`
	Result client.ResultView `json:"result"`
}

type onceOptions struct {
	file    string
	only    []string
	output  string
	verbose bool
}

func once(ctx context.Context, stdout, stderr io.Writer, log *slog.Logger, o onceOptions) int {
	cfg, jobs, err := checkstate.LoadJobs(o.file, "", log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitConfigError
	}
	if len(o.only) > 0 {
		want := map[string]bool{}
		for _, n := range o.only {
			want[n] = true
		}
		var picked []scheduler.Job
		for _, j := range jobs {
			if want[j.Name] {
				picked = append(picked, j)
				delete(want, j.Name)
			}
		}
		if len(want) > 0 {
			var missing []string
			for n := range want {
				missing = append(missing, n)
			}
			fmt.Fprintf(stderr, "%s: no such check: %s\n", cfg.File, strings.Join(missing, ", "))
			return ExitConfigError
		}
		jobs = picked
	}
	results := scheduler.New(scheduler.Options{MaxConcurrency: cfg.Global.MaxConcurrency, Logger: log}).RunOnce(ctx, jobs)
	if err := ctx.Err(); err != nil {
		fmt.Fprintln(stderr, "interrupted")
		return ExitFailed
	}

	allOK := true
	for _, r := range results {
		allOK = allOK && r.Success
	}
	switch o.output {
	case "json":
		out := struct {
			Success bool        `json:"success"`
			Checks  []onceCheck `json:"checks"`
		}{Success: allOK, Checks: []onceCheck{}}
		for i, j := range jobs {
			out.Checks = append(out.Checks, onceCheck{Name: j.Name, Type: j.Type, Result: client.NewResultView(results[i])})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintln(stderr, err)
			return ExitFailed
		}
	default:
		printTable(stdout, jobs, results, o.verbose)
	}
	if !allOK {
		return ExitFailed
	}
	return ExitOK
}

func printTable(w io.Writer, jobs []scheduler.Job, results []probes.Result, verbose bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tTYPE\tRESULT\tREASON\tDURATION\tVALUES")
	for i, j := range jobs {
		r := results[i]
		result, reason := "ok", "-"
		if !r.Success {
			result, reason = "FAIL", string(r.Reason)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.Name, j.Type, result, reason, r.Duration.Round(time.Millisecond), keyValues(j.Type, r.Values))
	}
	tw.Flush()
	for i, j := range jobs {
		if r := results[i]; !r.Success {
			msg := r.Message
			if !strings.HasPrefix(msg, string(r.Reason)) {
				msg = string(r.Reason) + ": " + msg
			}
			fmt.Fprintf(w, "\n%s: %s", j.Name, msg)
			if verbose {
				printDiagnostics(w, r.Diagnostics)
			}
		}
	}
	for _, r := range results {
		if !r.Success {
			fmt.Fprintln(w)
			break
		}
	}
}

// keyValues renders the values a probe marked as key, compactly:
// ratios as percentages, bytes with binary units.
func keyValues(typ string, values []probes.Value) string {
	var parts []string
	for _, v := range values {
		if !v.Key {
			continue
		}
		name := strings.TrimPrefix(v.Name, "vigil_"+typ+"_")
		name = strings.TrimPrefix(name, "vigil_")
		for _, l := range v.Labels {
			name += "[" + l.Value + "]"
		}
		var s string
		switch {
		case strings.HasSuffix(name, "_ratio"):
			name, s = strings.TrimSuffix(name, "_ratio"), fmt.Sprintf("%.1f%%", v.Value*100)
		case strings.HasSuffix(name, "_bytes"):
			name, s = strings.TrimSuffix(name, "_bytes"), iecBytes(v.Value)
		case strings.HasSuffix(name, "_seconds"):
			name, s = strings.TrimSuffix(name, "_seconds"), (time.Duration(v.Value * float64(time.Second))).Round(time.Microsecond).String()
		default:
			s = fmt.Sprintf("%.4g", v.Value)
		}
		parts = append(parts, name+"="+s)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func iecBytes(v float64) string {
	const unit = 1024
	if math.Abs(v) < unit {
		return fmt.Sprintf("%.0fB", v)
	}
	exp := 0
	for n := v / unit; math.Abs(n) >= unit && exp < 5; n /= unit {
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", v/math.Pow(unit, float64(exp+1)), "KMGTPE"[exp])
}

func checkConfig(stdout, stderr io.Writer, files []string) int {
	code := ExitOK
	for _, f := range files {
		cfg, err := config.Load(f)
		if err != nil {
			var cerr config.Errors
			if errors.As(err, &cerr) {
				fmt.Fprintln(stderr, cerr.Error())
				fmt.Fprintf(stderr, "%s: FAILED: %d problem(s)\n", f, len(cerr))
			} else {
				fmt.Fprintf(stderr, "%s: FAILED: %v\n", f, err)
			}
			code = ExitFailed
			continue
		}
		// Building the checks logs warnings worth seeing here, such as a
		// logscan pattern without a required literal.
		warn := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		if _, err := checkstate.Jobs(cfg, "", warn.With("config", f)); err != nil {
			fmt.Fprintf(stderr, "%s: FAILED: %v\n", f, err)
			code = ExitFailed
			continue
		}
		groups, err := ruleeval.Load(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "%s: FAILED: rule_files: %v\n", f, err)
			code = ExitFailed
			continue
		}
		if len(groups) > 0 {
			n := 0
			for _, g := range groups {
				n += len(g.Rules)
			}
			fmt.Fprintf(stdout, "%s: %d rule group(s), %d rule(s)\n", f, len(groups), n)
		}
		if sloGroups, err := slo.Groups(cfg); err != nil {
			fmt.Fprintf(stderr, "%s: FAILED: slos: %v\n", f, err)
			code = ExitFailed
			continue
		} else if len(sloGroups) > 0 {
			names := make([]string, len(cfg.SLOs))
			for i, s := range cfg.SLOs {
				names[i] = fmt.Sprintf("%s (%s over %s)", s.Name, strconv.FormatFloat(s.Objective*100, 'f', -1, 64)+"%", s.Window)
			}
			fmt.Fprintf(stdout, "%s: %d SLO(s): %s\n", f, len(cfg.SLOs), strings.Join(names, ", "))
		}
		rbs, err := runbook.LoadConfigured(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "%s: FAILED: %v\n", f, err)
			code = ExitFailed
			continue
		}
		if len(rbs) > 0 {
			names := make([]string, len(rbs))
			for i, rb := range rbs {
				names[i] = rb.Name + " (" + string(rb.Mode) + ")"
			}
			fmt.Fprintf(stdout, "%s: %d runbook(s): %s\n", f, len(rbs), strings.Join(names, ", "))
		}
		drs, err := drill.LoadConfigured(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "%s: FAILED: %v\n", f, err)
			code = ExitFailed
			continue
		}
		if len(drs) > 0 {
			names := make([]string, len(drs))
			for i, d := range drs {
				names[i] = d.Name
			}
			fmt.Fprintf(stdout, "%s: %d drill(s): %s\n", f, len(drs), strings.Join(names, ", "))
		}
		if len(cfg.RemoteWrite) > 0 {
			// Names only: a URL may carry a token in its query.
			names := make([]string, len(cfg.RemoteWrite))
			for i, rw := range cfg.RemoteWrite {
				names[i] = fmt.Sprintf("%s (every %s, queue of %d samples)", rw.Name, rw.Interval, rw.QueueConfig.Capacity)
			}
			fmt.Fprintf(stdout, "%s: %d remote_write receiver(s): %s\n", f, len(cfg.RemoteWrite), strings.Join(names, ", "))
		}
		paging, err := paging.Check(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "%s: FAILED: %v\n", f, err)
			code = ExitFailed
			continue
		}
		if paging != "" {
			fmt.Fprintf(stdout, "%s: %s\n", f, paging)
		}
		fmt.Fprintf(stdout, "%s: OK: %d check(s), default interval %s, recheck %s\n", f, len(cfg.Checks), cfg.Global.Interval, cfg.Global.RecheckInterval)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		// FAILS AFTER: failed runs in a row before the check fails
		// (failure_threshold), so one can read how fast each confirms.
		fmt.Fprintln(tw, "  CHECK\tTYPE\tINTERVAL\tTIMEOUT\tRECHECK\tFAILS AFTER\tLABELS")
		for _, c := range cfg.Checks {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.Name, c.Type, c.Interval, c.Timeout, c.RecheckInterval, max(c.FailureThreshold, 1), formatLabels(c.Labels))
		}
		tw.Flush()
	}
	return code
}

func formatLabels(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(l))
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// printDiagnostics renders diagnostics indented under a failure: lists of
// Stringers (traceroute hops) one per line, anything else as JSON.
func printDiagnostics(w io.Writer, d map[string]any) {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := reflect.ValueOf(d[k])
		if v.Kind() == reflect.Slice && v.Len() > 0 && v.Index(0).Type().Implements(stringerType) {
			fmt.Fprintf(w, "\n  %s:", k)
			for i := range v.Len() {
				fmt.Fprintf(w, "\n    %s", v.Index(i).Interface().(fmt.Stringer).String())
			}
			continue
		}
		b, err := json.Marshal(d[k])
		if err != nil {
			b = []byte(fmt.Sprint(d[k]))
		}
		fmt.Fprintf(w, "\n  %s: %s", k, b)
	}
}

var stringerType = reflect.TypeFor[fmt.Stringer]()
