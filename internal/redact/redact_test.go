package redact

import "testing"

func TestRedact(t *testing.T) {
	r := New([]string{
		"postgres://vigil:pg-S3cret@db1:5432/invoices?sslmode=disable",
		"https://oapi.dingtalk.com/robot/send?access_token=0a1b2c3d4e5f",
		"host=db2 user=ops password='kv pass 9' dbname=x",
		"root:my-sq1-pw@tcp(127.0.0.1:3306)/test",
		"abc", // too short to redact
		"SEC12345678",
	})
	tests := []struct{ in, want string }{
		{"dsn=postgres://vigil:pg-S3cret@db1:5432/invoices?sslmode=disable", "dsn=" + Mask},
		{"PGPASSWORD=pg-S3cret", "PGPASSWORD=" + Mask},
		{"token 0a1b2c3d4e5f leaked", "token " + Mask + " leaked"},
		{"password is kv pass 9.", "password is " + Mask + "."},
		{"mysql pw my-sq1-pw", "mysql pw " + Mask},
		{"abc abc", "abc abc"},
		{"x SEC12345678SEC12345678 y", "x " + Mask + Mask + " y"},
		{"sslmode=disable", "sslmode=disable"}, // not a token-like parameter
	}
	for _, tt := range tests {
		if got := r.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	var nilR *Redactor
	if nilR.Redact("x") != "x" {
		t.Error("nil redactor changed text")
	}
	r.Set(nil)
	if r.Redact("pg-S3cret") != "pg-S3cret" {
		t.Error("Set(nil) kept old values")
	}
}
