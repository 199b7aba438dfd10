package runbook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/internal/redact"
	_ "github.com/vigil-project/vigil/probes/database" // the postgres check family
)

// syncBuffer is a log sink the run goroutines write to concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestExecSecretsNowhere: a manager over the real store runs exec steps in
// an agent whose config holds a DSN password and a webhook token, with a
// secret_env variable and another runbook's secret file. The steps print
// all of them — `env`, a file holding the config's secrets, the other
// runbook's secret, a secret written in two pieces, one cut by
// max_output, one on stderr of a failing step — and none appears in the
// journal (as the API serves it), in the logs, or anywhere in the SQLite
// files; the agent's own unrelated environment never reaches a step, and
// the secret_env variable does (its value masked).
func TestExecSecretsNowhere(t *testing.T) {
	const (
		dbPW      = "Dsn-PW-rb-4411"
		hookToken = "HookTok-rb-5522"
		stepPW    = "StepPW-rb-6633x"
		otherPW   = "OtherRB-pw-8855"
		agentOnly = "AgentOnly-rb-7744" // in the agent's environment, referenced nowhere
	)
	t.Setenv("VIGIL_TEST_RB_DSN", "postgres://vigil:"+dbPW+"@127.0.0.1:1/x?sslmode=disable")
	t.Setenv("VIGIL_TEST_RB_HOOK", "http://127.0.0.1:1/hook?token="+hookToken)
	t.Setenv("VIGIL_TEST_RB_STEP_PW", stepPW)
	t.Setenv("VIGIL_TEST_SECRET_TOKEN", agentOnly)
	dir := t.TempDir()
	cfg, err := config.Parse("vigil.yml", []byte(`
checks:
  - name: db
    type: postgres
    postgres:
      dsn: ${VIGIL_TEST_RB_DSN}
notify:
  route: {receiver: oncall}
  receivers:
    - name: oncall
      webhook_configs:
        - url_secret: ${VIGIL_TEST_RB_HOOK}
`))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// What a careless script prints: secrets found on disk.
	leak := write("leak.txt", "dsn password "+dbPW+", hook token "+hookToken+"\n")
	otherFile := write("other.pass", otherPW+"\n")
	const secretEnv = `secret_env: {PGPASSWORD: '${VIGIL_TEST_RB_STEP_PW}'}`
	show, err := Parse("show.yml", []byte(fmt.Sprintf(`name: show
trigger: {manual: true}
steps:
  - name: env
    exec:
      argv: [env]
      env: {PGHOST: db1}
      %[1]s
  - name: the config's secrets, read from disk
    exec: {argv: [cat, %[2]s]}
  - name: another runbook's secret, read from its file
    exec: {argv: [cat, %[3]s]}
  - name: in two writes
    exec:
      argv: [sh, -c, 'v=$PGPASSWORD; h=${v%%????????}; printf "pieces: %%s" "$h"; sleep 0.05; printf "%%s\n" "${v#"$h"}"']
      %[1]s
  - name: cut by max_output
    exec:
      argv: [sh, -c, 'printf "%%090d" 0; printf "%%s\n" "$PGPASSWORD"; printf "%%0200d\n" 0']
      max_output: 100
      %[1]s
  - name: fails with its secret on stderr
    exec:
      argv: [sh, -c, 'echo "failing with $PGPASSWORD" >&2; exit 3']
      %[1]s
`, secretEnv, leak, otherFile)))
	if err != nil {
		t.Fatal(err)
	}
	other, err := Parse("other.yml", []byte(fmt.Sprintf(`name: other
trigger: {manual: true}
steps:
  - exec:
      argv: ['true']
      secret_env: {OTHER_PW: {file: %s}}
`, otherFile)))
	if err != nil {
		t.Fatal(err)
	}

	db := filepath.Join(dir, "v.db")
	st, err := store.Open(context.Background(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	logs := &syncBuffer{}
	locks := newMemLocks()
	m := NewManager(Options{Journal: st, Locker: locks, State: locks,
		Env:    Env{Redactor: redact.New(config.SecretValues(cfg))},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	m.SetRunbooks([]*Runbook{show, other})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); m.Wait() }()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := m.Trigger(ctx, "show", map[string]string{"check": "db"}, nil, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	row := waitState(t, st, id, ResultFailed)
	_, evs, err := st.Run(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(struct {
		Row    store.RunRow
		Events []store.RunEvent
	}{row, evs})
	journal := string(js)
	var outputs []string
	for _, ev := range evs {
		var o Outcome
		if ev.Kind == "step_end" && json.Unmarshal([]byte(ev.Detail), &o) == nil {
			outputs = append(outputs, o.Output)
		}
	}
	if len(outputs) != 6 {
		t.Fatalf("%d steps ran, want 6:\n%s", len(outputs), journal)
	}
	mask := redact.Mask
	for i, want := range [][]string{
		{"PGHOST=db1\n", "PGPASSWORD=" + mask + "\n", "VIGIL_RUN_ID=" + id, "VIGIL_ALERT_CHECK=db"},
		{"dsn password " + mask + ", hook token " + mask},
		{mask},
		{"pieces: " + mask},
		{strings.Repeat("0", 90) + mask + "\n0\n… ", "more bytes not kept"},
		{"failing with " + mask},
	} {
		for _, w := range want {
			if !strings.Contains(outputs[i], w) {
				t.Errorf("step %d output lacks %q:\n%s", i+1, w, outputs[i])
			}
		}
	}
	if strings.Contains(outputs[0], "VIGIL_TEST_") {
		t.Errorf("the agent's environment reached the step:\n%s", outputs[0])
	}
	if err := st.Close(); err != nil { // checkpoints the WAL into the file
		t.Fatal(err)
	}
	views := map[string]string{"journal": journal, "logs": logs.String()}
	files, _ := filepath.Glob(db + "*")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		views["file "+filepath.Base(f)] = string(b)
	}
	if !strings.Contains(views["file v.db"], "PGHOST=db1") {
		t.Errorf("the store file does not hold the journal: the scan below proves nothing")
	}
	for name, v := range views {
		// The head of a secret counts: a cut that left it is a leak.
		for _, s := range []string{dbPW, hookToken, stepPW, stepPW[:7], otherPW, agentOnly} {
			if i := strings.Index(v, s); i >= 0 {
				t.Errorf("%s shows %q: …%q…", name, s, v[max(0, i-60):min(len(v), i+30)])
			}
		}
	}
}

// TestOutputRedactedBeforeCut: masking runs on the whole output before it
// is cut to its limit, so a secret across the limit leaves no head, and a
// secret written in pieces is masked; 1–3 character values are not masked.
func TestOutputRedactedBeforeCut(t *testing.T) {
	red := redact.New([]string{"S3cret-Value-42", "ab"})
	for _, tt := range []struct {
		name   string
		writes []string
		max    int
		want   string
	}{
		{"across the limit", []string{"xxxxxxxx", "S3cret-Value-42", "tail"}, 12, "xxxxxxxx<sec\n… 8 more bytes not kept"},
		{"in pieces", []string{"pw S3c", "ret-Va", "lue-42 ok"}, 100, "pw <secret> ok"},
		{"short values stay", []string{"ab cd ab"}, 100, "ab cd ab"},
		{"past the slack", []string{strings.Repeat("y", 10+redactSlack), "S3cret-Value-42"}, 10, "yyyyyyyyyy\n… " + fmt.Sprint(redactSlack+15) + " more bytes not kept"},
		{"source not read to its end", []string{"0123456789abc"}, 10, "0123456789\n… more bytes not kept"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := &boundedBuffer{max: tt.max, uncounted: strings.Contains(tt.name, "not read")}
			for _, w := range tt.writes {
				b.Write([]byte(w))
			}
			if got := b.text(red); got != tt.want {
				t.Errorf("text = %q, want %q", got, tt.want)
			}
		})
	}
}
