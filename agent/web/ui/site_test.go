package ui

import "testing"

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "/",
		"/alerts":                "/alerts",
		"/checks/invoice_qr?x=1": "/checks/invoice_qr?x=1",
		"/checks/a%20b":          "/checks/a%20b",
		"//evil.example":         "/",
		"https://evil.example":   "/",
		`/\evil`:                 "/",
		"/\t/evil.example":       "/", // /login?next=/%09/evil.example: browsers drop the tab
		"/\n/evil.example":       "/",
		"/\r\n/evil.example":     "/",
		" //evil.example":        "/",
		"/ /evil.example":        "/",
		"/%2F/evil.example":      "/",
		"/%09/evil.example":      "/%09/evil.example", // stays escaped: a path on this site
		"/%5Cevil.example":       "/%5Cevil.example",
		"javascript:alert(1)":    "/",
		"/\u3000/evil.example":   "/", // ideographic space
		"/alerts#frag":           "/alerts",
		"///evil.example":        "/",
		"/.//evil.example":       "/.//evil.example", // a path on this site
		"http:/evil.example":     "/",
		"/\x00/evil.example":     "/",
		"/\x7f/evil.example":     "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
