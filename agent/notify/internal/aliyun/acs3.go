package aliyun

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Algorithm names Aliyun's V3 request signature.
const Algorithm = "ACS3-HMAC-SHA256"

// EmptyHash is the SHA-256 of an empty body, x-acs-content-sha256 of a
// request whose parameters are all in the query string.
const EmptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Request is what an ACS3 signature covers.
type Request struct {
	Method string
	// Path is the resource path, "/" for RPC-style APIs.
	Path string
	// Query holds the API's parameters (RPC style: every parameter).
	Query map[string]string
	// Headers are the headers to sign besides the x-acs-* ones Sign sets:
	// host, and content-type when there is a body. Names in any case.
	Headers map[string]string
	Body    []byte
}

// Signed is a signed request: the headers to send (x-acs-*,
// Authorization) and, for tests, the intermediate strings.
type Signed struct {
	Headers          map[string]string
	CanonicalRequest string
	StringToSign     string
	Signature        string
	Authorization    string
}

// Sign computes the V3 signature (Aliyun's "V3版本请求体&签名机制",
// https://help.aliyun.com/zh/sdk/product-overview/v3-request-structure-and-signature):
// the canonical request is method, encoded path, sorted encoded query,
// the sorted lower-case host/content-type/x-acs-* headers, their names,
// and the hex SHA-256 of the body; the string to sign is the algorithm
// and the hex SHA-256 of the canonical request; the signature is the hex
// HMAC-SHA256 of it under the AccessKey secret.
func Sign(r Request, action, version, keyID, secret string, now time.Time, nonce string) Signed {
	sum := sha256.Sum256(r.Body)
	h := map[string]string{}
	for k, v := range r.Headers {
		h[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	h["x-acs-action"] = action
	h["x-acs-version"] = version
	h["x-acs-date"] = now.UTC().Format("2006-01-02T15:04:05Z")
	h["x-acs-signature-nonce"] = nonce
	h["x-acs-content-sha256"] = hex.EncodeToString(sum[:])

	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	var canonHeaders strings.Builder
	for _, k := range names {
		canonHeaders.WriteString(k + ":" + h[k] + "\n")
	}
	signedHeaders := strings.Join(names, ";")
	canonical := strings.Join([]string{
		strings.ToUpper(r.Method), canonicalPath(r.Path), CanonicalQuery(r.Query),
		canonHeaders.String(), signedHeaders, h["x-acs-content-sha256"],
	}, "\n")
	hashed := sha256.Sum256([]byte(canonical))
	toSign := Algorithm + "\n" + hex.EncodeToString(hashed[:])
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(toSign))
	sig := hex.EncodeToString(mac.Sum(nil))
	auth := Algorithm + " Credential=" + keyID + ",SignedHeaders=" + signedHeaders + ",Signature=" + sig

	out := map[string]string{"Authorization": auth}
	for k, v := range h {
		if strings.HasPrefix(k, "x-acs-") {
			out[k] = v
		}
	}
	return Signed{Headers: out, CanonicalRequest: canonical, StringToSign: toSign, Signature: sig, Authorization: auth}
}

// CanonicalQuery sorts the parameters by name and joins name=value pairs,
// both percent-encoded (Encode), with &.
func CanonicalQuery(q map[string]string) string {
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = Encode(k) + "=" + Encode(q[k])
	}
	return strings.Join(parts, "&")
}

// canonicalPath encodes each segment of the path; RPC APIs use "/".
func canonicalPath(p string) string {
	if p == "" {
		return "/"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = Encode(s)
	}
	return strings.Join(segs, "/")
}

// Encode percent-encodes per RFC 3986 as the signature wants it: only
// A–Z a–z 0–9 - _ . ~ stay, a space is %20 (not +), * is %2A. The same
// string is sent, so what is signed is what the gateway reads.
func Encode(s string) string {
	// QueryEscape leaves the unreserved set and turns space into +;
	// everything else it already encodes as %XX.
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
