package ui

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Formatting of times, durations and values for people: in the page's
// language, times in the configured zone, values with the unit their
// metric name carries.

// zone is loc, or the host's zone when none is set.
func zone(loc *time.Location) *time.Location {
	if loc == nil {
		return time.Local
	}
	return loc
}

// Timestamp is t in the zone as the page shows it, or — for no time.
func Timestamp(loc *time.Location, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(zone(loc)).Format("2006-01-02 15:04:05")
}

// ShortDuration is d in at most two units, rounded down to the second:
// 36s, 7m36s, 2h05m, 3d04h in English; 36秒, 7分36秒, 2小时05分, 3天04小时 in
// Chinese.
func ShortDuration(lang string, d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	zh := lang == "zh"
	switch {
	case d < time.Minute:
		if zh {
			return fmt.Sprintf("%d秒", s)
		}
		return fmt.Sprintf("%ds", s)
	case d < time.Hour:
		if zh {
			return fmt.Sprintf("%d分%02d秒", s/60, s%60)
		}
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case d < 48*time.Hour:
		if zh {
			return fmt.Sprintf("%d小时%02d分", s/3600, s/60%60)
		}
		return fmt.Sprintf("%dh%02dm", s/3600, s/60%60)
	}
	if zh {
		return fmt.Sprintf("%d天%02d小时", s/86400, s/3600%24)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s/3600%24)
}

// Ago is how long before now t was: "7m36s ago", "7分36秒前".
func Ago(lang string, now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	s := ShortDuration(lang, now.Sub(t).Round(time.Second))
	if lang == "zh" {
		return s + "前"
	}
	return s + " ago"
}

// Until is how long after now t comes: "in 7m36s", "7分36秒后"; a time
// already passed reads "now" (a due run waiting for its slot).
func Until(lang string, now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return T(lang, "time.now")
	}
	s := ShortDuration(lang, d)
	if lang == "zh" {
		return s + "后"
	}
	return "in " + s
}

// Secs is a duration in seconds for people: 1.2 ms, 3.45 s, or in two
// units from two minutes on (2m05s, 2分05秒).
func Secs(lang string, s float64) string {
	zh := lang == "zh"
	switch {
	case math.IsNaN(s) || math.IsInf(s, 0):
		return strconv.FormatFloat(s, 'g', -1, 64)
	case s == 0:
		return "0"
	case s < 0:
		return "-" + Secs(lang, -s)
	case s < 1:
		if zh {
			return fmt.Sprintf("%.1f 毫秒", s*1000)
		}
		return fmt.Sprintf("%.1f ms", s*1000)
	case s < 120:
		if zh {
			return fmt.Sprintf("%.2f 秒", s)
		}
		return fmt.Sprintf("%.2f s", s)
	}
	return ShortDuration(lang, time.Duration(s*float64(time.Second)))
}

// Bytes is a size with binary prefixes: 512 B, 1.5 KiB, 3.2 GiB.
func Bytes(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return sign + strconv.FormatFloat(v, 'f', -1, 64) + " B"
	}
	prec := 1
	if v < 10 {
		prec = 2
	}
	return sign + strconv.FormatFloat(v, 'f', prec, 64) + " " + units[i]
}

// Plain is a number without float noise: integers whole, others to at
// most three decimals (four significant digits when small); an exponent
// only from 10^15 on.
func Plain(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'g', -1, 64)
	case math.Abs(v) >= 1e15:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) < 0.001:
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

// Raw is a number exactly as measured, without an exponent (the title
// behind a humanized value).
func Raw(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// percent is a ratio as a percentage to two decimals, trailing zeros cut.
func percent(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	s := strconv.FormatFloat(v*100, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}

// HumanValue shows a metric's value with the unit its name ends in
// (Prometheus naming): *_timestamp_seconds as a time in the zone (and how
// far off), *_seconds as a duration, *_bytes with binary prefixes,
// *_ratio as a percentage; counts, codes and everything else as plain
// numbers.
func HumanValue(lang string, loc *time.Location, now time.Time, name string, v float64) string {
	switch {
	case strings.HasSuffix(name, "_timestamp_seconds"):
		if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return Plain(v)
		}
		t := time.Unix(0, int64(v*1e9))
		rel := Ago(lang, now, t)
		if t.After(now) {
			rel = Until(lang, now, t)
		}
		return Timestamp(loc, t) + " (" + rel + ")"
	case strings.HasSuffix(name, "_seconds"):
		return Secs(lang, v)
	case strings.HasSuffix(name, "_bytes"):
		return Bytes(v)
	case strings.HasSuffix(name, "_ratio"):
		return percent(v)
	}
	return Plain(v)
}
