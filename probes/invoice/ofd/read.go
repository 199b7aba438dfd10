package ofd

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // image headers, for the size of each image
	_ "image/jpeg" //
	_ "image/png"  //
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-project/vigil/probes/invoice/fpxml"
	"github.com/vigil-project/vigil/probes/invoice/internal/xmltree"
)

// Document is what Read found in an OFD.
type Document struct {
	DocID      string
	Creator    string            // DocInfo Creator (Suwell, Huhuang Software…)
	CustomData map[string]string // DocInfo CustomDatas: name → value (发票号码, 合计金额…)
	Pages      int

	// Images are the images the pages, templates and annotations draw
	// (ImageObject), each once, QR-likely first. The QR code of an invoice is
	// a small square image; the seal and watermarks are not square.
	Images []Image

	// Tags are the document's custom tags (CustomTags): tag name (InvoiceNo,
	// TaxInclusiveTotalAmount…) → the text of the page objects it points
	// to, first occurrence of each name.
	Tags map[string]string

	Attachments []Attachment

	// Invoice merges the invoice fields from an invoice XML attachment, the
	// custom tags and DocInfo CustomData, in that order of preference.
	Invoice Invoice

	Signatures []Signature

	// Warnings are parts referenced but missing or unreadable, and sources
	// that disagree on a field. Read succeeded in spite of them.
	Warnings []string
}

// Signed reports whether the document declares a signature or seal.
func (d *Document) Signed() bool { return len(d.Signatures) > 0 }

// Image is one image resource drawn by the document.
type Image struct {
	Path       string // zip entry
	ResourceID string
	Format     string // "png", "jpeg", "gif"; empty when Go does not read the format (JBIG2…)
	Width      int    // pixels, from the header; 0 when Format is empty
	Height     int
	BoxWidth   float64 // size drawn, in mm (ImageObject Boundary), of the first object drawing it
	BoxHeight  float64
	QRLikely   bool // square in pixels and as drawn
	Data       []byte
}

// Attachment is one entry of the document's Attachments.
type Attachment struct {
	Name    string
	Format  string
	Path    string
	Invoice *fpxml.Invoice // when the attachment is an invoice XML fpxml reads
}

// Read parses an OFD document within lim (zero fields take DefaultLimits).
// It fails when a limit is exceeded, when the file is not a zip, has an
// unsafe entry name, or lacks OFD.xml or the document root; parts that are
// missing or malformed beyond that become Warnings.
func Read(b []byte, lim Limits) (*Document, error) {
	lim = lim.withDefaults()
	p, err := openPackage(b, lim)
	if err != nil {
		return nil, err
	}
	r := &reader{p: p, doc: &Document{}, objects: map[string]string{}, res: map[string]string{}}
	if err := r.read(); err != nil {
		return nil, err
	}
	return r.doc, nil
}

type reader struct {
	p       *pkg
	doc     *Document
	objects map[string]string // page object ID → text (TextObject)
	res     map[string]string // MultiMedia ID → entry
	draws   []draw
}

type draw struct {
	resID string
	w, h  float64
}

// warn records a non-fatal problem; limit errors are returned instead.
func (r *reader) warn(err error) error {
	if isLimit(err) {
		return err
	}
	r.doc.Warnings = append(r.doc.Warnings, err.Error())
	return nil
}

func (r *reader) read() error {
	root, err := r.p.xml("OFD.xml")
	if errors.Is(err, errMissing) {
		return errors.New("ofd: no OFD.xml entry: not an OFD package")
	}
	if err != nil {
		return err
	}
	if root.Name != "OFD" {
		return fmt.Errorf("ofd: OFD.xml: root element <%s>, expected <OFD>", root.Name)
	}
	body := root.Child("DocBody")
	if body == nil {
		return errors.New("ofd: OFD.xml: no DocBody")
	}
	info := body.Child("DocInfo")
	r.doc.DocID, r.doc.Creator = info.TextOf("DocID"), info.TextOf("Creator")
	for _, c := range info.Child("CustomDatas").All("CustomData") {
		if r.doc.CustomData == nil {
			r.doc.CustomData = map[string]string{}
		}
		if name := c.Attr("Name"); name != "" {
			if _, ok := r.doc.CustomData[name]; !ok {
				r.doc.CustomData[name] = c.Text
			}
		}
	}
	docRoot, err := resolve("", body.TextOf("DocRoot"))
	if err != nil {
		return fmt.Errorf("ofd: OFD.xml DocRoot: %w", err)
	}
	docXML, err := r.p.xml(docRoot)
	if isLimit(err) {
		return err
	}
	if err != nil {
		return fmt.Errorf("%w (the document root OFD.xml names)", err)
	}
	if docXML.Name != "Document" {
		return fmt.Errorf("ofd: %s: root element <%s>, expected <Document>", docRoot, docXML.Name)
	}
	dir := path.Dir(docRoot)
	steps := []func(*xmltree.Node, string) error{r.resources, r.pages, r.annotations, r.images, r.tags, r.attachments}
	for _, step := range steps {
		if err := step(docXML, dir); err != nil {
			return err
		}
	}
	if loc := body.TextOf("Signatures"); loc != "" {
		if err := r.signatures(loc); err != nil {
			return err
		}
	}
	return r.merge()
}

// part resolves loc against dir and parses it; problems other than limits
// become warnings (nil node, nil error).
func (r *reader) part(what, dir, loc string) (*xmltree.Node, string, error) {
	name, err := resolve(dir, loc)
	if err != nil {
		return nil, "", r.warn(fmt.Errorf("ofd: %s: %w", what, err))
	}
	n, err := r.p.xml(name)
	if isLimit(err) {
		return nil, "", err
	}
	if err != nil {
		return nil, "", r.warn(fmt.Errorf("%s: %w", what, err))
	}
	return n, name, nil
}

// resources reads the MultiMedia of PublicRes and DocumentRes.
func (r *reader) resources(doc *xmltree.Node, dir string) error {
	common := doc.Child("CommonData")
	for _, el := range append(common.All("PublicRes"), common.All("DocumentRes")...) {
		if err := r.resFile(el.Name, dir, el.Text); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) resFile(what, dir, loc string) error {
	res, name, err := r.part(what, dir, loc)
	if res == nil {
		return err
	}
	base := path.Dir(name)
	if b := res.Attr("BaseLoc"); b != "" {
		if base, err = resolve(base, b); err != nil {
			return r.warn(fmt.Errorf("ofd: %s BaseLoc: %w", name, err))
		}
	}
	for _, m := range res.Child("MultiMedias").All("MultiMedia") {
		id := m.Attr("ID")
		if _, seen := r.res[id]; seen || id == "" {
			continue
		}
		file, err := resolve(base, m.TextOf("MediaFile"))
		if err != nil {
			if err := r.warn(fmt.Errorf("ofd: %s MultiMedia %s: %w", name, id, err)); err != nil {
				return err
			}
			continue
		}
		r.res[id] = file
	}
	return nil
}

// pages reads the templates and pages: the text of each object (for the
// custom tags) and what images they draw.
func (r *reader) pages(doc *xmltree.Node, dir string) error {
	for _, t := range doc.Child("CommonData").All("TemplatePage") {
		if err := r.page("template "+t.Attr("ID"), dir, t.Attr("BaseLoc"), false); err != nil {
			return err
		}
	}
	for _, pg := range doc.Child("Pages").All("Page") {
		r.doc.Pages++
		if err := r.page("page "+pg.Attr("ID"), dir, pg.Attr("BaseLoc"), true); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) page(what, dir, loc string, texts bool) error {
	pg, name, err := r.part(what, dir, loc)
	if pg == nil {
		return err
	}
	for _, res := range pg.All("PageRes") {
		if err := r.resFile(what+" PageRes", path.Dir(name), res.Text); err != nil {
			return err
		}
	}
	r.objectsIn(pg.Child("Content"), texts)
	return nil
}

// objectsIn records the ImageObjects below n and, when texts is set, the
// text of each TextObject by ID.
func (r *reader) objectsIn(n *xmltree.Node, texts bool) {
	n.Walk(func(o *xmltree.Node) bool {
		switch o.Name {
		case "ImageObject":
			w, h := boxSize(o.Attr("Boundary"))
			r.draws = append(r.draws, draw{resID: o.Attr("ResourceID"), w: w, h: h})
			return false
		case "TextObject":
			if !texts {
				return false
			}
			var s strings.Builder
			for _, tc := range o.All("TextCode") {
				s.WriteString(tc.Text)
			}
			if id := o.Attr("ID"); id != "" {
				if _, seen := r.objects[id]; !seen {
					r.objects[id] = s.String()
				}
			}
			return false
		}
		return true
	})
}

// boxSize is the width and height of a Boundary "x y w h".
func boxSize(s string) (float64, float64) {
	f := strings.Fields(s)
	if len(f) != 4 {
		return 0, 0
	}
	w, err1 := strconv.ParseFloat(f[2], 64)
	h, err2 := strconv.ParseFloat(f[3], 64)
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	return w, h
}

// annotations reads the images annotations draw (stamps, watermarks).
func (r *reader) annotations(doc *xmltree.Node, dir string) error {
	loc := doc.TextOf("Annotations")
	if loc == "" {
		return nil
	}
	ann, name, err := r.part("Annotations", dir, loc)
	if ann == nil {
		return err
	}
	for _, pg := range ann.All("Page") {
		a, _, err := r.part("annotations of page "+pg.Attr("PageID"), path.Dir(name), pg.TextOf("FileLoc"))
		if a == nil {
			if err != nil {
				return err
			}
			continue
		}
		r.objectsIn(a, false)
	}
	return nil
}

// images reads each image drawn, once, and orders them QR-likely first.
func (r *reader) images(*xmltree.Node, string) error {
	seen := map[string]bool{}
	for _, d := range r.draws {
		if seen[d.resID] {
			continue
		}
		seen[d.resID] = true
		file, ok := r.res[d.resID]
		if !ok {
			if err := r.warn(fmt.Errorf("ofd: ImageObject uses resource %q, which no MultiMedia declares", d.resID)); err != nil {
				return err
			}
			continue
		}
		if len(r.doc.Images) >= r.p.lim.MaxImages {
			return &LimitError{Entry: file, Limit: "images", Max: int64(r.p.lim.MaxImages)}
		}
		data, err := r.p.entry(file)
		if err != nil {
			if err := r.warn(fmt.Errorf("image resource %s: %w", d.resID, err)); err != nil {
				return err
			}
			continue
		}
		img := Image{Path: file, ResourceID: d.resID, BoxWidth: d.w, BoxHeight: d.h, Data: data}
		if cfg, format, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
			img.Format, img.Width, img.Height = format, cfg.Width, cfg.Height
		}
		img.QRLikely = square(float64(img.Width), float64(img.Height)) && img.Width >= 21 &&
			(img.BoxWidth == 0 || square(img.BoxWidth, img.BoxHeight))
		r.doc.Images = append(r.doc.Images, img)
	}
	slices.SortStableFunc(r.doc.Images, func(a, b Image) int {
		switch {
		case a.QRLikely && !b.QRLikely:
			return -1
		case b.QRLikely && !a.QRLikely:
			return 1
		}
		return 0
	})
	return nil
}

// square reports whether w and h are within 10% of each other.
func square(w, h float64) bool {
	return w > 0 && h > 0 && w <= h*1.1 && h <= w*1.1
}

// tags reads CustomTags: each tag file names page objects (ObjectRef) for
// invoice fields; the field's text is theirs, joined.
func (r *reader) tags(doc *xmltree.Node, dir string) error {
	loc := doc.TextOf("CustomTags")
	if loc == "" {
		return nil
	}
	ct, name, err := r.part("CustomTags", dir, loc)
	if ct == nil {
		return err
	}
	for _, tag := range ct.All("CustomTag") {
		t, _, err := r.part("custom tag "+tag.Attr("TypeID"), path.Dir(name), tag.TextOf("FileLoc"))
		if t == nil {
			if err != nil {
				return err
			}
			continue
		}
		t.Walk(func(n *xmltree.Node) bool {
			refs := n.All("ObjectRef")
			if len(refs) == 0 {
				return true
			}
			var s strings.Builder
			for _, ref := range refs {
				s.WriteString(r.objects[ref.Text])
			}
			if r.doc.Tags == nil {
				r.doc.Tags = map[string]string{}
			}
			if _, seen := r.doc.Tags[n.Name]; !seen {
				r.doc.Tags[n.Name] = strings.TrimSpace(s.String())
			}
			return false
		})
	}
	return nil
}

// attachments lists Attachments and reads those that are invoice XML.
func (r *reader) attachments(doc *xmltree.Node, dir string) error {
	loc := doc.TextOf("Attachments")
	if loc == "" {
		return nil
	}
	at, name, err := r.part("Attachments", dir, loc)
	if at == nil {
		return err
	}
	for _, a := range at.All("Attachment") {
		file, err := resolve(path.Dir(name), a.TextOf("FileLoc"))
		if err != nil {
			if err := r.warn(fmt.Errorf("ofd: attachment %q: %w", a.Attr("Name"), err)); err != nil {
				return err
			}
			continue
		}
		att := Attachment{Name: a.Attr("Name"), Format: a.Attr("Format"), Path: file}
		if strings.EqualFold(att.Format, "xml") || strings.HasSuffix(strings.ToLower(file), ".xml") {
			b, err := r.p.entry(file)
			if err != nil {
				if err := r.warn(fmt.Errorf("attachment %q: %w", att.Name, err)); err != nil {
					return err
				}
			} else if inv, err := fpxml.Parse(b); err != nil {
				if err := r.warn(fmt.Errorf("ofd: attachment %q (%s): %w", att.Name, file, err)); err != nil {
					return err
				}
			} else {
				att.Invoice = inv
			}
		}
		r.doc.Attachments = append(r.doc.Attachments, att)
	}
	return nil
}
