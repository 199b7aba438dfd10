// Package ofd reads OFD e-invoices (GB/T 33190-2016: a zip package whose
// OFD.xml names the document root, Document.xml its pages, resources,
// custom tags, attachments and annotations, Signs/ its signatures) far
// enough for the invoice checks: the images drawn on the pages (the QR code
// among them), the invoice fields the document embeds, and what its
// signatures claim.
//
// An OFD comes from a target, so it is bounded before it is believed: the
// file size, the number of zip entries, the bytes actually inflated from
// each entry and from all of them (counted while reading, whatever the zip
// headers claim), the depth and length of every XML part, the number of
// images. Entry names that are absolute, contain a ".." component or a
// backslash, or occur twice, make the whole file invalid. Only parts the
// document references are inflated.
//
// Signatures are described, never verified: see Signature.Verified.
package ofd

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/vigil-project/vigil/probes/invoice/internal/xmltree"
)

// Limits bound what reading one OFD may cost. A zero field takes the value
// in DefaultLimits.
type Limits struct {
	MaxFileBytes  int64 // size of the OFD (the zip) itself
	MaxEntries    int   // entries in the zip directory
	MaxEntryBytes int64 // bytes inflated from one entry
	MaxTotalBytes int64 // bytes inflated from all entries read, together
	MaxXMLDepth   int   // element nesting in one XML part
	MaxXMLTokens  int   // tokens (elements, text runs, comments) in one XML part
	MaxImages     int   // image resources read
}

// DefaultLimits are generous for invoices and small next to a bomb. The
// real invoices in the fixtures are 25–290 KB inflated, 12–24 entries, with
// XML parts at most 53 KB and 7 elements deep; a 100-line invoice is about
// 20 pages.
var DefaultLimits = Limits{
	MaxFileBytes:  32 << 20,
	MaxEntries:    2000,
	MaxEntryBytes: 16 << 20,
	MaxTotalBytes: 64 << 20,
	MaxXMLDepth:   64,
	MaxXMLTokens:  500_000,
	MaxImages:     64,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxFileBytes > 0 {
		d.MaxFileBytes = l.MaxFileBytes
	}
	if l.MaxEntries > 0 {
		d.MaxEntries = l.MaxEntries
	}
	if l.MaxEntryBytes > 0 {
		d.MaxEntryBytes = l.MaxEntryBytes
	}
	if l.MaxTotalBytes > 0 {
		d.MaxTotalBytes = l.MaxTotalBytes
	}
	if l.MaxXMLDepth > 0 {
		d.MaxXMLDepth = l.MaxXMLDepth
	}
	if l.MaxXMLTokens > 0 {
		d.MaxXMLTokens = l.MaxXMLTokens
	}
	if l.MaxImages > 0 {
		d.MaxImages = l.MaxImages
	}
	return d
}

// LimitError is an OFD refused because reading it would cost more than
// Limits allow. Entry names the zip entry, or is empty for the whole file.
type LimitError struct {
	Entry string
	Limit string // "file size", "entries", "entry size", "total size", "XML depth", "XML tokens", "images"
	Max   int64
}

func (e *LimitError) Error() string {
	var b strings.Builder
	b.WriteString("ofd: ")
	if e.Entry != "" {
		fmt.Fprintf(&b, "entry %q: ", e.Entry)
	}
	switch e.Limit {
	case "file size":
		fmt.Fprintf(&b, "file larger than the %d-byte limit", e.Max)
	case "entries":
		fmt.Fprintf(&b, "zip holds more than the limit of %d entries", e.Max)
	case "entry size":
		fmt.Fprintf(&b, "inflates to more than the %d-byte limit per entry", e.Max)
	case "total size":
		fmt.Fprintf(&b, "reading it takes the entries read past the %d-byte limit in total", e.Max)
	case "XML depth":
		fmt.Fprintf(&b, "XML nested deeper than the limit of %d elements", e.Max)
	case "XML tokens":
		fmt.Fprintf(&b, "XML longer than the limit of %d tokens", e.Max)
	default:
		fmt.Fprintf(&b, "more %s than the limit of %d", e.Limit, e.Max)
	}
	return b.String()
}

// errMissing is a referenced entry the zip does not hold.
var errMissing = errors.New("no such entry in the package")

// pkg is the zip with the bounds of one Read.
type pkg struct {
	lim   Limits
	files map[string]*zip.File
	lower map[string]*zip.File // producers disagree on case (Res/res)
	read  int64
	xmls  map[string]*xmltree.Node
}

func openPackage(b []byte, lim Limits) (*pkg, error) {
	if int64(len(b)) > lim.MaxFileBytes {
		return nil, &LimitError{Limit: "file size", Max: lim.MaxFileBytes}
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("ofd: not a zip archive (an OFD is a zip package): %w", err)
	}
	if len(zr.File) > lim.MaxEntries {
		return nil, &LimitError{Limit: "entries", Max: int64(lim.MaxEntries)}
	}
	p := &pkg{lim: lim, files: make(map[string]*zip.File, len(zr.File)),
		lower: make(map[string]*zip.File, len(zr.File)), xmls: map[string]*xmltree.Node{}}
	for _, f := range zr.File {
		if err := checkName(f.Name); err != nil {
			return nil, fmt.Errorf("ofd: entry %q: %w", f.Name, err)
		}
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		if _, dup := p.files[f.Name]; dup {
			return nil, fmt.Errorf("ofd: entry %q occurs twice; which one a reader takes is ambiguous", f.Name)
		}
		p.files[f.Name] = f
		p.lower[strings.ToLower(f.Name)] = f
	}
	return p, nil
}

// checkName refuses entry names that would point outside the package if
// anything ever extracted it, or that different readers resolve
// differently.
func checkName(n string) error {
	switch {
	case n == "":
		return errors.New("empty entry name")
	case strings.ContainsRune(n, '\\'):
		return errors.New("backslash in entry name")
	case strings.ContainsRune(n, 0):
		return errors.New("NUL in entry name")
	case strings.HasPrefix(n, "/") || len(n) >= 2 && n[1] == ':':
		return errors.New("absolute entry name")
	}
	for _, c := range strings.Split(n, "/") {
		if c == ".." {
			return errors.New(`".." in entry name`)
		}
	}
	return nil
}

// resolve turns an OFD location (ST_Loc) into an entry name: absolute
// locations start at the package root, others at dir, the directory of
// the part that holds the reference.
func resolve(dir, loc string) (string, error) {
	loc = strings.TrimSpace(loc)
	switch {
	case loc == "":
		return "", errors.New("empty location")
	case strings.ContainsRune(loc, '\\') || strings.ContainsRune(loc, 0):
		return "", fmt.Errorf("location %q: backslash or NUL", loc)
	}
	var p string
	if strings.HasPrefix(loc, "/") {
		p = path.Clean(loc[1:])
	} else {
		p = path.Join(dir, loc)
	}
	if p == "." || p == ".." || strings.HasPrefix(p, "../") || strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("location %q leaves the package", loc)
	}
	return p, nil
}

// entry inflates one entry, counting the bytes that come out.
func (p *pkg) entry(name string) ([]byte, error) {
	f := p.files[name]
	if f == nil {
		f = p.lower[strings.ToLower(name)]
	}
	if f == nil {
		return nil, fmt.Errorf("ofd: entry %q: %w", name, errMissing)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("ofd: entry %q: %w", f.Name, err)
	}
	defer rc.Close()
	max := p.lim.MaxEntryBytes
	if left := p.lim.MaxTotalBytes - p.read; left < max {
		max = left
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(rc, max+1))
	p.read += n
	if n > max {
		if max < p.lim.MaxEntryBytes {
			return nil, &LimitError{Entry: f.Name, Limit: "total size", Max: p.lim.MaxTotalBytes}
		}
		return nil, &LimitError{Entry: f.Name, Limit: "entry size", Max: p.lim.MaxEntryBytes}
	}
	switch {
	case errors.Is(err, zip.ErrFormat):
		return nil, fmt.Errorf("ofd: entry %q: inflates to more than the %d bytes its zip header declares, or is corrupt: %w", f.Name, f.UncompressedSize64, err)
	case errors.Is(err, zip.ErrChecksum):
		return nil, fmt.Errorf("ofd: entry %q: CRC-32 does not match its zip header: %w", f.Name, err)
	case err != nil:
		return nil, fmt.Errorf("ofd: entry %q: %w", f.Name, err)
	}
	return buf.Bytes(), nil
}

// xml reads and parses one XML part (once).
func (p *pkg) xml(name string) (*xmltree.Node, error) {
	if n, ok := p.xmls[name]; ok {
		return n, nil
	}
	b, err := p.entry(name)
	if err != nil {
		return nil, err
	}
	n, err := xmltree.Parse(b, p.lim.MaxXMLDepth, p.lim.MaxXMLTokens)
	if err != nil {
		var le *xmltree.LimitError
		if errors.As(err, &le) {
			return nil, &LimitError{Entry: name, Limit: "XML " + le.Limit, Max: int64(le.Max)}
		}
		return nil, fmt.Errorf("ofd: entry %q: %w", name, err)
	}
	p.xmls[name] = n
	return n, nil
}

// isLimit reports whether err is a refused bound, which ends Read: a part
// that is merely missing or malformed only costs its own contribution.
func isLimit(err error) bool {
	var le *LimitError
	return errors.As(err, &le)
}
