package ui

import (
	"math"
	"testing"
	"time"
)

func TestShortDuration(t *testing.T) {
	tests := []struct {
		d      time.Duration
		en, zh string
	}{
		{0, "0s", "0秒"},
		{-time.Second, "0s", "0秒"},
		{36 * time.Second, "36s", "36秒"},
		{7*time.Minute + 36*time.Second, "7m36s", "7分36秒"},
		{time.Hour - time.Millisecond, "59m59s", "59分59秒"},
		{2*time.Hour + 5*time.Minute + 59*time.Second, "2h05m", "2小时05分"},
		{47*time.Hour + 59*time.Minute, "47h59m", "47小时59分"},
		{3*24*time.Hour + 4*time.Hour + 30*time.Minute, "3d04h", "3天04小时"},
	}
	for _, tt := range tests {
		t.Run(tt.en, func(t *testing.T) {
			if got := ShortDuration("en", tt.d); got != tt.en {
				t.Errorf("en %s", got)
			}
			if got := ShortDuration("zh", tt.d); got != tt.zh {
				t.Errorf("zh %s", got)
			}
		})
	}
}

func TestAgoUntil(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, lang string
		f          func(string, time.Time, time.Time) string
		t          time.Time
		want       string
	}{
		{"ago en", "en", Ago, now.Add(-(7*time.Minute + 36*time.Second)), "7m36s ago"},
		{"ago zh minutes", "zh", Ago, now.Add(-(7*time.Minute + 36*time.Second)), "7分36秒前"},
		{"ago zh hours", "zh", Ago, now.Add(-(2*time.Hour + 5*time.Minute)), "2小时05分前"},
		{"ago zh days", "zh", Ago, now.Add(-(3*24*time.Hour + 4*time.Hour)), "3天04小时前"},
		{"ago zero time", "zh", Ago, time.Time{}, "—"},
		{"until en", "en", Until, now.Add(90 * time.Second), "in 1m30s"},
		{"until zh", "zh", Until, now.Add(2 * time.Hour), "2小时00分后"},
		{"until passed", "en", Until, now.Add(-time.Second), "now"},
		{"until passed zh", "zh", Until, now.Add(-time.Second), "即将"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f(tt.lang, now, tt.t); got != tt.want {
				t.Errorf("%q, want %q", got, tt.want)
			}
		})
	}
}

func TestSecs(t *testing.T) {
	tests := []struct {
		s      float64
		en, zh string
	}{
		{0, "0", "0"},
		{0.0012, "1.2 ms", "1.2 毫秒"},
		{3.456, "3.46 s", "3.46 秒"},
		{125, "2m05s", "2分05秒"},
		{-0.5, "-500.0 ms", "-500.0 毫秒"},
		{math.NaN(), "NaN", "NaN"},
	}
	for _, tt := range tests {
		if got := Secs("en", tt.s); got != tt.en {
			t.Errorf("Secs(en, %v) = %q, want %q", tt.s, got, tt.en)
		}
		if got := Secs("zh", tt.s); got != tt.zh {
			t.Errorf("Secs(zh, %v) = %q, want %q", tt.s, got, tt.zh)
		}
	}
}

func TestHumanValue(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		v    float64
		want string
	}{
		{"vigil_host_memory_available_bytes", 512, "512 B"},
		{"vigil_host_memory_available_bytes", 1536, "1.50 KiB"},
		{"vigil_http_response_bytes", 5 << 20, "5.00 MiB"},
		{"vigil_host_filesystem_size_bytes", 250 << 30, "250.0 GiB"},
		{"vigil_icmp_rtt_avg_seconds", 0.0123, "12.3 ms"},
		{"vigil_invoice_sync_lag_seconds", 456, "7m36s"},
		{"vigil_host_memory_used_ratio", 0.4213, "42.13%"},
		{"vigil_icmp_packet_loss_ratio", 1, "100%"},
		{"vigil_icmp_packet_loss_ratio", 0, "0%"},
		{"vigil_log_lines_total", 1234567, "1234567"},
		{"vigil_http_status_code", 503, "503"},
		{"vigil_dns_answer_rrs", 2, "2"},
		{"vigil_host_load1", 0.52, "0.52"},
		{"vigil_host_load5", 1.23456, "1.235"},
		{"vigil_sql_value", 0.00012345, "0.0001234"},
		{"vigil_sql_value", 1e20, "1e+20"},
		{"vigil_tls_cert_expiry_timestamp_seconds", float64(now.Add(45 * 24 * time.Hour).Unix()), "2025-04-15 08:00:00 (in 45d00h)"},
		{"vigil_log_last_match_timestamp_seconds", float64(now.Add(-90 * time.Second).Unix()), "2025-03-01 07:58:30 (1m30s ago)"},
		{"vigil_log_last_match_timestamp_seconds", 0, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HumanValue("en", shanghai, now, tt.name, tt.v); got != tt.want {
				t.Errorf("HumanValue(%s, %v) = %q, want %q", tt.name, tt.v, got, tt.want)
			}
		})
	}
	if got := HumanValue("zh", shanghai, now, "vigil_icmp_rtt_avg_seconds", 0.0123); got != "12.3 毫秒" {
		t.Errorf("zh seconds: %q", got)
	}
}

func TestTimestampZone(t *testing.T) {
	at := time.Date(2025, 3, 1, 1, 2, 3, 0, time.UTC)
	shanghai, _ := time.LoadLocation("Asia/Shanghai")
	if got := Timestamp(shanghai, at); got != "2025-03-01 09:02:03" {
		t.Errorf("Shanghai: %s", got)
	}
	if got := Timestamp(time.UTC, at.In(shanghai)); got != "2025-03-01 01:02:03" {
		t.Errorf("UTC: %s", got)
	}
	if got := Timestamp(nil, at); got != at.Local().Format("2006-01-02 15:04:05") {
		t.Errorf("no zone is the host's: %s", got)
	}
	if got := Timestamp(shanghai, time.Time{}); got != "—" {
		t.Errorf("zero time: %s", got)
	}
}
