package aliyun

import (
	"errors"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
)

// TestSignPublishedExample signs Aliyun's published V3 example and
// compares every intermediate value the documentation prints.
//
// Source: "V3版本请求体&签名机制",
// https://help.aliyun.com/zh/sdk/product-overview/v3-request-structure-and-signature
// (the same example, with its intermediate values, is repeated in Function
// Compute's "签名机制", https://help.aliyun.com/zh/functioncompute/fc/developer-reference/signature-mechanism):
// POST https://ecs.cn-shanghai.aliyuncs.com/?ImageId=…&RegionId=cn-shanghai,
// RunInstances 2014-05-26, AccessKey YourAccessKeyId / YourAccessKeySecret,
// x-acs-date 2023-10-26T10:22:32Z, nonce 3156853299f313e23d1673dc12e1703d,
// empty body.
func TestSignPublishedExample(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		req                   Request
		action, version       string
		keyID, secret         string
		date                  string
		nonce                 string
		wantCanonicalHash     string
		wantSignature, wantAu string
	}{
		{
			name: "RunInstances",
			req: Request{Method: "POST", Path: "/",
				Query:   map[string]string{"RegionId": "cn-shanghai", "ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"},
				Headers: map[string]string{"Host": "ecs.cn-shanghai.aliyuncs.com"}},
			action: "RunInstances", version: "2014-05-26",
			keyID: "YourAccessKeyId", secret: "YourAccessKeySecret",
			date: "2023-10-26T10:22:32Z", nonce: "3156853299f313e23d1673dc12e1703d",
			wantCanonicalHash: "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259",
			wantSignature:     "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0",
			wantAu: "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version," +
				"Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now, err := time.Parse(time.RFC3339, tc.date)
			if err != nil {
				t.Fatal(err)
			}
			s := Sign(tc.req, tc.action, tc.version, tc.keyID, tc.secret, now, tc.nonce)
			const wantCanonical = "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n" +
				"host:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\n" +
				"x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n" +
				"x-acs-date:2023-10-26T10:22:32Z\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\nx-acs-version:2014-05-26\n\n" +
				"host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n" +
				"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
			if s.CanonicalRequest != wantCanonical {
				t.Errorf("canonical request:\n%s\nwant:\n%s", s.CanonicalRequest, wantCanonical)
			}
			if s.StringToSign != tc.wantCanonicalHash {
				t.Errorf("string to sign %q, want %q", s.StringToSign, tc.wantCanonicalHash)
			}
			if s.Signature != tc.wantSignature {
				t.Errorf("signature %s, want %s", s.Signature, tc.wantSignature)
			}
			if s.Authorization != tc.wantAu || s.Headers["Authorization"] != tc.wantAu {
				t.Errorf("authorization %q, want %q", s.Authorization, tc.wantAu)
			}
			if s.Headers["x-acs-content-sha256"] != EmptyHash || s.Headers["host"] != "" {
				t.Errorf("headers %v: want the x-acs-* ones and Authorization (host is the transport's)", s.Headers)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	for in, want := range map[string]string{
		"AZaz09-_.~":     "AZaz09-_.~",
		"a b*c+d/e=f&g":  "a%20b%2Ac%2Bd%2Fe%3Df%26g",
		`{"alert":"发票"}`: "%7B%22alert%22%3A%22%E5%8F%91%E7%A5%A8%22%7D",
	} {
		if got := Encode(in); got != want {
			t.Errorf("Encode(%q) = %q, want %q", in, got, want)
		}
	}
	if got := CanonicalQuery(map[string]string{"b": "2", "a": "x y", "TemplateParam": "{}"}); got != "TemplateParam=%7B%7D&a=x%20y&b=2" {
		t.Errorf("CanonicalQuery = %q", got)
	}
}

func TestClassify(t *testing.T) {
	for code, want := range map[string]string{
		"isv.BUSINESS_LIMIT_CONTROL": "after", "Throttling.User": "retry", "Throttling.Api": "retry", "ServiceUnavailable": "retry",
		"isp.SYSTEM_ERROR": "retry", "InternalError": "retry", "SignatureNonceUsed": "retry",
		"isv.SMS_TEMPLATE_ILLEGAL": "permanent", "isv.SMS_SIGNATURE_ILLEGAL": "permanent", "isv.MOBILE_NUMBER_ILLEGAL": "permanent",
		"isv.AMOUNT_NOT_ENOUGH": "permanent", "isv.DAY_LIMIT_CONTROL": "permanent", "SignatureDoesNotMatch": "permanent",
		"InvalidAccessKeyId.NotFound": "permanent", "isp.RAM_PERMISSION_DENY": "permanent", "isv.TEMPLATE_MISSING_PARAMETERS": "permanent",
	} {
		got := classOf(Classify(code, errTest))
		if got != want {
			t.Errorf("%s: %s, want %s", code, got, want)
		}
	}
}

var errTest = errors.New("test")

func classOf(err error) string {
	var ra *notify.RetryAfterError
	switch {
	case notify.IsPermanent(err):
		return "permanent"
	case errors.As(err, &ra):
		return "after"
	default:
		return "retry"
	}
}
