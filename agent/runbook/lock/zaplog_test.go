package lock

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestZapToSlog(t *testing.T) {
	var buf bytes.Buffer
	z := zapToSlog(slog.New(slog.NewTextHandler(&buf, nil))).With(zap.String("endpoint", "127.0.0.1:2379"))
	z.Info("dropped")
	z.Warn("retrying of unary invoker failed", zap.Int("attempt", 2))
	z.Error("lease keepalive failed")
	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="retrying of unary invoker failed" component=etcd attempt=2 endpoint=127.0.0.1:2379`,
		`level=ERROR msg="lease keepalive failed" component=etcd endpoint=127.0.0.1:2379`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "dropped") {
		t.Errorf("info line kept:\n%s", out)
	}
	zapToSlog(nil).Error("to nowhere")
}
