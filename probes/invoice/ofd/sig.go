package ofd

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"path"
	"strings"
)

// Signature is what one of the document's signatures (Signs/…/Signature.xml
// and its SignedValue) claims.
type Signature struct {
	Path       string // Signature.xml entry
	ID         string
	Type       string // "Seal" (the default) or "Sign"
	Provider   string // SignedInfo Provider ProviderName (KingGrid, …)
	Company    string
	Method     string // SignatureMethod: an OID, 1.2.156.10197.1.501 is SM2 with SM3
	Time       string // SignatureDateTime as written
	References int    // package entries the signature lists with their digests

	// From the SES signature (GM/T 0031 / GB/T 38540) in SignedValue, when it
	// could be decoded.
	SealName string // the seal's name (测试全国统一发票监制章…)
	SealID   string // the seal's esID
	Signer   string // subject of the signing certificate (CN, OU, O, L, ST, C)
	Issuer   string // issuer of the signing certificate

	// Verified is always false. Checking an OFD signature takes the SM3
	// digests of every referenced entry, the SM2 signature over
	// Signature.xml under the signer's certificate, the seal's own SM2
	// signature and a chain to the tax authority's CA. Go's standard
	// library has neither SM2 nor SM3 and no maintained module on the Go
	// module proxy verifies SES signatures (looked for: zc310/ofd and
	// xiaoqidun/ofdgo are not served; the gmsm modules served are old and do
	// not parse SES), so vigil reports what a signature claims and never
	// that it holds.
	Verified bool
}

func (r *reader) signatures(loc string) error {
	sigs, name, err := r.part("Signatures", "", loc)
	if sigs == nil {
		return err
	}
	for _, s := range sigs.All("Signature") {
		sig := Signature{ID: s.Attr("ID"), Type: s.Attr("Type")}
		if sig.Type == "" {
			sig.Type = "Seal"
		}
		x, file, err := r.part("signature "+sig.ID, path.Dir(name), s.Attr("BaseLoc"))
		if x == nil {
			if err != nil {
				return err
			}
			// Declared but unreadable: still a signature the document claims.
			r.doc.Signatures = append(r.doc.Signatures, sig)
			continue
		}
		sig.Path = file
		si := x.Child("SignedInfo")
		if p := si.Child("Provider"); p != nil {
			sig.Provider, sig.Company = p.Attr("ProviderName"), p.Attr("Company")
		}
		sig.Method, sig.Time = si.TextOf("SignatureMethod"), si.TextOf("SignatureDateTime")
		sig.References = len(si.Child("References").All("Reference"))
		if v := x.TextOf("SignedValue"); v != "" {
			if err := r.signedValue(&sig, path.Dir(file), v); err != nil {
				return err
			}
		}
		r.doc.Signatures = append(r.doc.Signatures, sig)
	}
	return nil
}

func (r *reader) signedValue(sig *Signature, dir, loc string) error {
	file, err := resolve(dir, loc)
	if err != nil {
		return r.warn(fmt.Errorf("ofd: signature %s SignedValue: %w", sig.ID, err))
	}
	b, err := r.p.entry(file)
	if err != nil {
		return r.warn(fmt.Errorf("signature %s: %w", sig.ID, err))
	}
	if err := sig.parseSES(b); err != nil {
		return r.warn(fmt.Errorf("ofd: signature %s: %s: %w", sig.ID, file, err))
	}
	return nil
}

// Bounds on the walk through a SignedValue (a few KB in practice, five
// levels deep).
const (
	maxASN1Depth = 12
	maxASN1Nodes = 4096
)

// parseSES reads the seal and certificates of an SES_Signature. Both
// versions of the structure (GM/T 0031-2014 and its V4) nest the same
// pieces differently, so it walks the DER tree: the seal information is the
// SEQUENCE whose header starts with the IA5String "ES"; certificates are
// OCTET STRINGs holding X.509 DER, the signer's the shallowest.
func (sig *Signature) parseSES(b []byte) error {
	var top asn1.RawValue
	if rest, err := asn1.Unmarshal(b, &top); err != nil {
		return fmt.Errorf("SignedValue is not DER: %w", err)
	} else if len(rest) > 0 || top.Tag != asn1.TagSequence {
		return errors.New("SignedValue is not an SES signature (one DER SEQUENCE)")
	}
	nodes, signerDepth := 0, -1
	var walk func(v asn1.RawValue, depth int) error
	walk = func(v asn1.RawValue, depth int) error {
		nodes++
		if nodes > maxASN1Nodes || depth > maxASN1Depth {
			return errors.New("SignedValue nested or long beyond what an SES signature is")
		}
		if v.Class == asn1.ClassUniversal && v.Tag == asn1.TagOctetString {
			if subj, iss, ok := certNames(v.Bytes); ok && (signerDepth < 0 || depth < signerDepth) {
				sig.Signer, sig.Issuer, signerDepth = subj, iss, depth
			}
			return nil
		}
		if !v.IsCompound {
			return nil
		}
		kids, err := children(v.Bytes)
		if err != nil {
			return err
		}
		if sig.SealID == "" && isSealInfo(kids) {
			sig.SealID = string(kids[1].Bytes)
			if prop, err := children(kids[2].Bytes); err == nil {
				for _, p := range prop {
					if p.Tag == asn1.TagUTF8String {
						sig.SealName = string(p.Bytes)
						break
					}
				}
			}
		}
		for _, k := range kids {
			if err := walk(k, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(top, 0)
}

func children(b []byte) ([]asn1.RawValue, error) {
	var out []asn1.RawValue
	for len(b) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(b, &v)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		b = rest
	}
	return out, nil
}

// isSealInfo recognises SES_SealInfo: header SEQUENCE { IA5String "ES",
// INTEGER version, IA5String vid }, esID IA5String, property SEQUENCE.
func isSealInfo(kids []asn1.RawValue) bool {
	if len(kids) < 3 || kids[0].Tag != asn1.TagSequence || kids[1].Tag != asn1.TagIA5String || kids[2].Tag != asn1.TagSequence {
		return false
	}
	h, err := children(kids[0].Bytes)
	return err == nil && len(h) > 0 && h[0].Tag == asn1.TagIA5String && string(h[0].Bytes) == "ES"
}

// certNames returns the subject and issuer of an X.509 certificate. It
// reads the names only: crypto/x509 refuses these certificates, whose keys
// are on the SM2 curve.
func certNames(der []byte) (subject, issuer string, ok bool) {
	if len(der) == 0 || der[0] != 0x30 {
		return "", "", false
	}
	var cert struct {
		TBS asn1.RawValue
		Alg asn1.RawValue
		Sig asn1.BitString
	}
	if rest, err := asn1.Unmarshal(der, &cert); err != nil || len(rest) > 0 {
		return "", "", false
	}
	tbs, err := children(cert.TBS.Bytes)
	if err != nil {
		return "", "", false
	}
	if len(tbs) > 0 && tbs[0].Class == asn1.ClassContextSpecific && tbs[0].Tag == 0 {
		tbs = tbs[1:] // version
	}
	// serialNumber, signature, issuer, validity, subject
	if len(tbs) < 5 {
		return "", "", false
	}
	iss, ok1 := name(tbs[2].FullBytes)
	sub, ok2 := name(tbs[4].FullBytes)
	return sub, iss, ok1 && ok2
}

func name(der []byte) (string, bool) {
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdn); err != nil || len(rest) > 0 {
		return "", false
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdn)
	var parts []string
	add := func(k string, vs ...string) {
		for _, v := range vs {
			if v != "" {
				parts = append(parts, k+"="+v)
			}
		}
	}
	add("CN", n.CommonName)
	add("OU", n.OrganizationalUnit...)
	add("O", n.Organization...)
	add("L", n.Locality...)
	add("ST", n.Province...)
	add("C", n.Country...)
	return strings.Join(parts, ", "), true
}
