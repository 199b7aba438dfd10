// Package tc3 signs Tencent Cloud API 3.0 requests with TC3-HMAC-SHA256
// (签名方法 v3, https://cloud.tencent.com/document/api/213/30654; in English
// https://intl.cloud.tencent.com/document/api/1021/34193).
package tc3

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Algorithm names the signature.
const Algorithm = "TC3-HMAC-SHA256"

// Request is what a TC3 signature covers: a POST of a JSON body to "/"
// (API 3.0 takes no path and, for POST, no query string).
type Request struct {
	// Service is the product, the first label of its host ("sms").
	Service string
	// Headers are the headers to sign, at least content-type and host;
	// names in any case, values as sent.
	Headers map[string]string
	Body    []byte
}

// Signed holds the Authorization header and, for tests, the
// intermediate strings.
type Signed struct {
	CanonicalRequest string
	StringToSign     string
	Signature        string
	Authorization    string
}

// Sign computes the signature at timestamp: the canonical request is
// "POST", "/", an empty query, the sorted lower-case headers with trimmed
// values, their names, and the hex SHA-256 of the body; the string to sign
// is the algorithm, the timestamp, the credential scope
// (UTC date/service/tc3_request) and the hex SHA-256 of the canonical
// request; the key is derived HMAC by HMAC from "TC3"+secret key through
// the date, the service and "tc3_request".
func Sign(r Request, secretID, secretKey string, timestamp time.Time) Signed {
	h := map[string]string{}
	names := make([]string, 0, len(r.Headers))
	for k, v := range r.Headers {
		lk := strings.ToLower(k)
		h[lk] = strings.TrimSpace(v)
		names = append(names, lk)
	}
	sort.Strings(names)
	var canonHeaders strings.Builder
	for _, k := range names {
		// The values are lower-cased too, as the documentation's rule
		// says; Tencent's own SDKs lower-case x-tc-action's.
		canonHeaders.WriteString(k + ":" + strings.ToLower(h[k]) + "\n")
	}
	signedHeaders := strings.Join(names, ";")
	canonical := "POST\n/\n\n" + canonHeaders.String() + "\n" + signedHeaders + "\n" + sha256Hex(r.Body)

	date := timestamp.UTC().Format("2006-01-02")
	scope := date + "/" + r.Service + "/tc3_request"
	toSign := Algorithm + "\n" + strconv.FormatInt(timestamp.Unix(), 10) + "\n" + scope + "\n" + sha256Hex([]byte(canonical))
	key := mac([]byte("TC3"+secretKey), date)
	key = mac(key, r.Service)
	key = mac(key, "tc3_request")
	sig := hex.EncodeToString(mac(key, toSign))
	auth := Algorithm + " Credential=" + secretID + "/" + scope + ", SignedHeaders=" + signedHeaders + ", Signature=" + sig
	return Signed{CanonicalRequest: canonical, StringToSign: toSign, Signature: sig, Authorization: auth}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mac(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
