package tc3

import (
	"strings"
	"testing"
	"time"
)

// TestSignPublishedExample signs Tencent Cloud's published example of
// signature v3 and compares every value the documentation prints.
//
// Source: "Signature Algorithm v3",
// https://intl.cloud.tencent.com/document/api/1021/34193 (the same page is
// in TencentCloud's documentation repository as Markdown): SecretId
// AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE, SecretKey
// Gu5t9xGARNpq86cd98joQYCN3EXAMPLE, cvm DescribeInstances at timestamp
// 1551113065, signed headers content-type;host. Tencent's current Chinese
// page (https://cloud.tencent.com/document/api/213/30654) masks the keys
// (AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******), so its signature cannot be
// reproduced; the English page's unmasked example is the one used here.
func TestSignPublishedExample(t *testing.T) {
	for _, tc := range []struct {
		name          string
		req           Request
		id, key       string
		ts            int64
		wantBodyHash  string
		wantToSign    string
		wantSignature string
		wantAuth      string
	}{
		{
			name: "cvm DescribeInstances",
			req: Request{Service: "cvm",
				Headers: map[string]string{"Content-Type": "application/json; charset=utf-8", "Host": "cvm.tencentcloudapi.com"},
				Body:    []byte(`{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}`)},
			id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", key: "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", ts: 1551113065,
			wantBodyHash:  "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064",
			wantToSign:    "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031",
			wantSignature: "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
			wantAuth: "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, " +
				"Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Sign(tc.req, tc.id, tc.key, time.Unix(tc.ts, 0))
			wantCanonical := "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n" + tc.wantBodyHash
			if s.CanonicalRequest != wantCanonical {
				t.Errorf("canonical request:\n%s\nwant:\n%s", s.CanonicalRequest, wantCanonical)
			}
			if s.StringToSign != tc.wantToSign {
				t.Errorf("string to sign:\n%s\nwant:\n%s", s.StringToSign, tc.wantToSign)
			}
			if s.Signature != tc.wantSignature || s.Authorization != tc.wantAuth {
				t.Errorf("authorization %q, want %q", s.Authorization, tc.wantAuth)
			}
		})
	}
}

// TestSignDateIsUTC: the scope's date is the UTC one, even when the
// timestamp is past midnight in China (the documentation's warning).
func TestSignDateIsUTC(t *testing.T) {
	cst := time.FixedZone("CST", 8*3600)
	s := Sign(Request{Service: "sms", Headers: map[string]string{"host": "sms.tencentcloudapi.com", "content-type": "application/json"}},
		"id", "key", time.Unix(1551113065, 0).In(cst))
	if want := "2019-02-25/sms/tc3_request"; !strings.Contains(s.StringToSign, want) {
		t.Errorf("string to sign %q lacks %q", s.StringToSign, want)
	}
}
