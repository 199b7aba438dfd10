package all_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/internal/aliyun/aliyuntest"
	"github.com/vigil-project/vigil/agent/notify/internal/tc3/tc3test"
	"github.com/vigil-project/vigil/agent/paging"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/internal/testenv"
)

const (
	akID     = "LTAI5tVigilE2EKeyId000001"
	akSecret = "VigilE2EAccessKeySecret00000000001"
	tcID     = "AKIDvigilE2ESecretId00000000000000001"
	tcKey    = "vigilE2ESecretKey000000000000001"
)

// TestPhonePagingEndToEnd pages through the real pager and outbox, the
// config parsed from YAML with the credentials from the environment and a
// file, to fakes of the three APIs that verify every signature: Aliyun
// SMS throttles the first request (the outbox retries it, texting only
// that number again), Aliyun voice calls, Tencent SMS texts both numbers in
// one request; a second receiver whose template Aliyun refuses is
// dead-lettered with Aliyun's code in the last error and no credential.
func TestPhonePagingEndToEnd(t *testing.T) {
	t.Setenv("VIGIL_E2E_AK_ID", akID)
	t.Setenv("VIGIL_E2E_TC_ID", tcID)
	t.Setenv("VIGIL_E2E_TC_KEY", tcKey)
	dir := t.TempDir()
	akFile := filepath.Join(dir, "ak")
	writeFile(t, akFile, akSecret+"\n")

	sms := aliyuntest.New(t, akID, akSecret, "SendSms", "2017-05-25")
	var first atomic.Bool
	sms.Answer(func(c aliyuntest.Call) (int, string) {
		if c.Params["TemplateCode"] == "SMS_REFUSED" {
			return 200, aliyuntest.JSON("isv.SMS_TEMPLATE_ILLEGAL", "模板不合法(不存在或被拉黑) "+akSecret)
		}
		if c.Params["PhoneNumbers"] == "13800001111" && first.CompareAndSwap(false, true) {
			return 400, aliyuntest.JSON("Throttling.User", "Request was denied due to user flow control.")
		}
		return 200, aliyuntest.JSON("OK", "OK")
	})
	voice := aliyuntest.New(t, akID, akSecret, "SingleCallByTts", "2017-05-25")
	tencent := tc3test.New(t, tcID, tcKey)

	cfg, err := config.Parse("vigil.yml", []byte(fmt.Sprintf(`notify:
  min_backoff: 100ms
  max_backoff: 500ms
  route:
    receiver: oncall
    group_by: [alertname]
    group_wait: 0s
    routes:
      - matchers: ['alertname="Refused"']
        receiver: refused
  receivers:
    - name: oncall
      aliyun_sms_configs:
        - access_key_id: ${VIGIL_E2E_AK_ID}
          access_key_secret_file: %[1]s
          endpoint: %[2]s
          phone_numbers: ["13800001111", "13900002222"]
          sign_name: 发票平台
          template_code: SMS_460755082
      aliyun_voice_configs:
        - access_key_id: ${VIGIL_E2E_AK_ID}
          access_key_secret_file: %[1]s
          endpoint: %[3]s
          called_numbers: ["13800001111"]
          tts_code: TTS_10001
      tencent_sms_configs:
        - secret_id: ${VIGIL_E2E_TC_ID}
          secret_key: ${VIGIL_E2E_TC_KEY}
          endpoint: %[4]s
          phone_numbers: ["+8613800001111", "+8613900002222"]
          sms_sdk_app_id: "1400006666"
          sign_name: 发票平台
          template_id: "1234567"
    - name: refused
      aliyun_sms_configs:
        - access_key_id: ${VIGIL_E2E_AK_ID}
          access_key_secret_file: %[1]s
          endpoint: %[2]s
          phone_numbers: ["13700003333"]
          sign_name: 发票平台
          template_code: SMS_REFUSED
`, akFile, sms.URL, voice.URL, tencent.URL)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "vigil.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	plan, err := paging.BuildPlan(cfg, "http://vigil.test:9877")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	p, err := paging.New(ctx, paging.Options{Store: st, Logger: slog.New(slog.NewTextHandler(logs, nil))}, cfg, plan)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	now := time.Now()
	alert := func(name string) notify.Alert {
		lbls := map[string]string{"alertname": name, "check": "invoice-qr", "severity": "page"}
		return notify.Alert{Labels: lbls, StartsAt: now, EndsAt: now.Add(time.Hour), Fingerprint: notify.Fingerprint(lbls)}
	}
	p.Alerts(ctx, []notify.Alert{alert("InvoiceQRFailing"), alert("Refused")})

	numbers := func() []string {
		var out []string
		for _, c := range sms.Calls() {
			out = append(out, c.Params["PhoneNumbers"])
		}
		return out
	}
	var sent, dead []*store.OutboxItem
	testenv.Eventually(t, 20*time.Second, "three pages delivered and the refused one dead-lettered", func() bool {
		sent, _ = st.OutboxItems(ctx, store.OutboxSent, 10)
		dead, _ = st.OutboxItems(ctx, store.OutboxDead, 10)
		return len(sent) == 3 && len(dead) == 1
	})
	// 13800001111 twice: its first request was throttled and the outbox
	// retried it; 13900002222 once, not texted again by the retry;
	// 13700003333 once, refused for good.
	got := numbers()
	slices.Sort(got)
	if want := []string{"13700003333", "13800001111", "13800001111", "13900002222"}; !slices.Equal(got, want) {
		t.Errorf("SendSms to %v, want %v", got, want)
	}
	if len(voice.Calls()) != 1 || len(tencent.Calls()) != 1 {
		t.Fatalf("%d voice calls and %d Tencent requests, want one each", len(voice.Calls()), len(tencent.Calls()))
	}
	if c := voice.Calls()[0].Params; c["CalledNumber"] != "13800001111" || !strings.Contains(c["TtsParam"], `"alert":"InvoiceQRFailing"`) {
		t.Errorf("voice call %v", c)
	}
	if r := tencent.Calls()[0].Req; !slices.Equal(r.PhoneNumberSet, []string{"+8613800001111", "+8613900002222"}) ||
		!slices.Equal(r.TemplateParamSet, []string{"InvoiceQRFailing", "firing", "1", "invoice-qr"}) {
		t.Errorf("tencent request %+v", r)
	}

	if e := dead[0].LastError; !strings.Contains(e, "aliyun_sms: 137****3333: isv.SMS_TEMPLATE_ILLEGAL: 模板不合法(不存在或被拉黑) <redacted>") {
		t.Errorf("last error %q", e)
	}
	for _, s := range []string{akSecret, tcKey, akID, tcID} {
		if strings.Contains(logs.String(), s) || strings.Contains(dead[0].LastError, s) {
			t.Errorf("a credential shows in the logs or the last error: %s", s)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
