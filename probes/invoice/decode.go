package invoice

import (
	"bytes"
	"cmp"
	"compress/zlib"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif"  // QR images may come in any common format
	_ "image/jpeg" //
	_ "image/png"  //
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/filter"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

var decodeHints = map[gozxing.DecodeHintType]any{
	gozxing.DecodeHintType_TRY_HARDER:    true,
	gozxing.DecodeHintType_CHARACTER_SET: "UTF-8",
}

// DecodeQR finds and decodes the QR code in an image: any size, rotation
// or position on a page. gozxing, because other Go decoders misread the
// numeric segments invoice payloads are full of.
func DecodeQR(img image.Image) (string, error) {
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", fmt.Errorf("prepare image: %w", err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, decodeHints)
	if err != nil {
		return "", fmt.Errorf("no readable QR code: %w", err)
	}
	return res.GetText(), nil
}

// Limits on what a target can make the agent allocate (DESIGN.md §6a:
// input from targets is bounded before it is decoded). An invoice QR is a
// few hundred pixels wide and an invoice PDF well under a megabyte, so the
// limits are generous for real documents and tiny next to a bomb: a 252 KB
// PNG can declare 15,000×15,000 pixels (over 500 MB decoded).
const (
	// maxImagePixels caps the pixels of any image decoded, checked from the
	// header (image.DecodeConfig) or the PDF image dictionary before the
	// pixels are allocated. 16 MP is an A4 page scanned at 400 dpi.
	maxImagePixels = 16_000_000
	// maxImageBytes caps the decoded samples of one PDF image stream:
	// 16 MP at 4 channels of 8 bits.
	maxImageBytes = 4 * maxImagePixels
	// maxPDFBytes caps the PDF itself (the HTTP client stops earlier, at
	// max_body_bytes; this guards other callers).
	maxPDFBytes = 32 << 20
	// maxPDFInflatedBytes caps what all the zlib (Flate) streams of a PDF
	// inflate to together, measured before pdfcpu reads the file.
	maxPDFInflatedBytes = 64 << 20
	// maxPDFStreamBytes caps each stream pdfcpu decodes while reading the
	// file (object and cross-reference streams), whatever its filter.
	maxPDFStreamBytes = 16 << 20
	// maxAuxStreamBytes caps the other streams an image rendering reads: an
	// Indexed colour lookup table is at most 256 × 4 bytes.
	maxAuxStreamBytes = 1 << 20
	// maxPDFImages caps how many images of a PDF are decoded looking for
	// the QR; an invoice has a handful (QR, seal, logo).
	maxPDFImages = 32
	// maxPDFPages caps how many pages are looked at: the QR is on the
	// first page of an invoice (and repeated on the pages of a long one),
	// and finding each page walks the page tree from its root.
	maxPDFPages = 20
	// maxFormDepth caps how deep images nested in form XObjects are looked
	// for.
	maxFormDepth = 4
)

// limitError is input refused because decoding it would take more memory
// than a probe may use; Error is the whole message.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

func limitErrorf(format string, args ...any) error {
	return &limitError{fmt.Sprintf(format, args...)}
}

// checkPixels refuses an image whose declared size exceeds maxImagePixels.
func checkPixels(w, h int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("image %dx%d has no pixels", w, h)
	}
	if px := int64(w) * int64(h); px > maxImagePixels {
		return limitErrorf("image %dx%d (%d MP) exceeds the %d MP limit", w, h, (px+500_000)/1_000_000, maxImagePixels/1_000_000)
	}
	return nil
}

// DecodeQRBytes decodes an encoded image (PNG, JPEG, GIF). The header is
// read first: image.Decode allocates whatever size the header declares, so
// a small compressed file could otherwise claim gigabytes.
func DecodeQRBytes(b []byte) (string, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("not an image: %w", err)
	}
	if err := checkPixels(cfg.Width, cfg.Height); err != nil {
		return "", fmt.Errorf("%s %w", format, err)
	}
	// Pixels alone are not the cost: a 16-bit RGBA PNG holds 8 bytes a
	// pixel, so 16 MP of it would be 128 MB.
	if bpp := bytesPerPixel(cfg.ColorModel); int64(cfg.Width)*int64(cfg.Height)*int64(bpp) > maxImageBytes {
		return "", limitErrorf("%s image %dx%d at %d bytes a pixel needs %d MB, over the %d MB limit", format, cfg.Width, cfg.Height, bpp,
			int64(cfg.Width)*int64(cfg.Height)*int64(bpp)/1_000_000, maxImageBytes/1_000_000)
	}
	img, format, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("not an image: %w", err)
	}
	s, err := DecodeQR(img)
	if err != nil {
		return "", fmt.Errorf("%s image %dx%d: %w", format, img.Bounds().Dx(), img.Bounds().Dy(), err)
	}
	return s, nil
}

// bytesPerPixel is what image.Decode allocates a pixel for a colour model.
func bytesPerPixel(m color.Model) int {
	switch m {
	case color.GrayModel, color.AlphaModel:
		return 1
	case color.Gray16Model, color.Alpha16Model:
		return 2
	case color.YCbCrModel:
		return 3
	case color.RGBA64Model, color.NRGBA64Model:
		return 8
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 4
}

// errNoImages means the PDF holds no images at all.
var errNoImages = errors.New("the PDF contains no images")

var pdfcpuOnce sync.Once

// pdfConfig is pdfcpu's configuration without its config directory: the
// library would otherwise create ~/.config/pdfcpu on first use.
func pdfConfig() *model.Configuration {
	pdfcpuOnce.Do(api.DisableConfigDir)
	conf := model.NewDefaultConfiguration()
	conf.Offline = true
	conf.ValidationMode = model.ValidationRelaxed
	return conf
}

// QRFromPDF extracts the images of a PDF with pdfcpu and returns the first
// QR payload found, with how many images were examined. An image over a
// limit is skipped like any unreadable one (the QR may be beside it); a
// file over a limit is refused whole.
func QRFromPDF(pdf []byte) (payload string, images int, err error) {
	var found string
	var lastErr error
	digest := func(name string, page int, load func() (model.Image, error)) {
		images++
		if found != "" {
			return // counted, not decoded
		}
		img, err := load()
		if err == nil {
			var data []byte
			if data, err = readAll(img); err == nil {
				found, err = DecodeQRBytes(data)
			}
		}
		if err != nil {
			lastErr = fmt.Errorf("image %s on page %d: %w", name, page, err)
		}
	}
	if err := extractImages(pdf, digest); err != nil {
		return "", images, fmt.Errorf("read PDF: %w", err)
	}
	switch {
	case found != "":
		return found, images, nil
	case images == 0:
		return "", 0, errNoImages
	default:
		return "", images, fmt.Errorf("none of %d images is a readable QR code (last: %w)", images, lastErr)
	}
}

// extractImages reads the PDF and hands its first maxPDFImages images, page
// by page, to digest, which extracts one by calling load.
//
// pdfcpu is driven through its lower-level API rather than
// ExtractPageImages, because the latter decodes with pdfcpu's defaults of
// 512 MiB per stream: it calls OptimizeContext, which inflates every page
// content stream, then StreamDict.Decode on each image and its soft mask.
// Here pdfcpu only reads the file (it leaves image streams encoded and
// decodes object and cross-reference streams within Limits), the page
// resources are walked directly, and each image stream is decoded with a
// limit taken from its own dictionary before pdfcpu renders it.
func extractImages(pdf []byte, digest func(name string, page int, load func() (model.Image, error))) (err error) {
	if len(pdf) > maxPDFBytes {
		return limitErrorf("PDF of %d bytes exceeds the %d MiB limit", len(pdf), maxPDFBytes>>20)
	}
	if err := checkInflated(pdf, maxPDFInflatedBytes); err != nil {
		return err
	}
	// pdfcpu reports some malformed input by panicking (its fault package);
	// outside its API wrappers that must become an error here.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed PDF: %v", r)
		}
	}()
	conf := pdfConfig()
	conf.Cmd = model.EXTRACTIMAGES
	conf.Limits.MaxStreamBytes = maxPDFBytes
	conf.Limits.MaxDecodeBytes = maxPDFStreamBytes
	conf.Limits.MaxImagePixels = maxImagePixels
	conf.Limits.MaxImageBytes = maxImageBytes
	ctx, err := api.ReadContext(bytes.NewReader(pdf), conf)
	if err != nil {
		return err
	}
	if err := ctx.EnsurePageCount(); err != nil {
		return err
	}
	seen := map[int]bool{}
	n := 0
	for p := 1; p <= min(ctx.PageCount, maxPDFPages); p++ {
		_, _, attrs, err := ctx.PageDict(p, false)
		if err != nil {
			return fmt.Errorf("page %d: %w", p, err)
		}
		var refs []imageRef
		if attrs != nil {
			refs = pageImages(ctx, attrs.Resources, 0, seen, nil)
		}
		for _, ref := range refs {
			if n == maxPDFImages {
				return nil
			}
			n++
			digest(ref.name, p, func() (model.Image, error) { return boundedImage(ctx, ref) })
		}
	}
	return nil
}

// imageRef is an image XObject and the resource name a page draws it by.
type imageRef struct {
	name string
	ref  types.IndirectRef
}

// pageImages lists the image XObjects of a resource dictionary, looking
// into form XObjects (where some issuers put the QR) up to maxFormDepth.
// seen holds the object numbers already listed or walked, so an image on
// every page, or a form that contains itself, is visited once.
func pageImages(ctx *model.Context, res types.Dict, depth int, seen map[int]bool, out []imageRef) []imageRef {
	if res == nil || depth > maxFormDepth {
		return out
	}
	xobjs, err := ctx.DereferenceDict(res["XObject"])
	if err != nil || xobjs == nil {
		return out
	}
	for _, name := range slices.Sorted(maps.Keys(xobjs)) {
		ir, ok := xobjs[name].(types.IndirectRef) // streams are always indirect
		if !ok || seen[ir.ObjectNumber.Value()] {
			continue
		}
		sd, _, err := ctx.DereferenceStreamDict(ir)
		if err != nil || sd == nil {
			continue
		}
		seen[ir.ObjectNumber.Value()] = true
		switch st := sd.Subtype(); {
		case st == nil:
		case *st == "Image":
			out = append(out, imageRef{name, ir})
		case *st == "Form":
			formRes, err := ctx.DereferenceDict(sd.Dict["Resources"])
			if err == nil {
				out = pageImages(ctx, formRes, depth+1, seen, out)
			}
		}
	}
	return out
}

// boundedImage has pdfcpu render one image after decoding its stream, and
// the streams rendering it reads, with limits; pdfcpu then finds them
// decoded and does not decode them again with its own 512 MiB default.
// The decoded copies live in a clone of the dictionary, so the document
// keeps nothing decoded once the image is done.
func boundedImage(ctx *model.Context, ref imageRef) (_ model.Image, err error) {
	// A malformed image must not hide the QR beside it: pdfcpu's panics
	// become this image's error.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed image: %v", r)
		}
	}()
	sd, _, err := ctx.DereferenceStreamDict(ref.ref)
	if err != nil || sd == nil {
		return model.Image{}, fmt.Errorf("image object %d: %w", ref.ref.ObjectNumber.Value(), cmp.Or(err, errors.New("missing")))
	}
	img := *sd
	img.Dict = maps.Clone(sd.Dict)
	if err := decodeImageStream(ctx, &img); err != nil {
		return model.Image{}, err
	}
	// A soft mask is a second image (the QR may be drawn by its alpha).
	if o, ok := img.Dict["SMask"]; ok {
		mask, _, err := ctx.DereferenceStreamDict(o)
		if err != nil || mask == nil {
			delete(img.Dict, "SMask")
		} else {
			m := *mask
			if err := decodeImageStream(ctx, &m); err != nil {
				return model.Image{}, fmt.Errorf("soft mask: %w", err)
			}
			img.Dict["SMask"] = m
		}
	}
	// An Indexed colour space may keep its lookup table in a stream.
	if cs, _ := ctx.DereferenceArray(img.Dict["ColorSpace"]); len(cs) == 4 {
		if n, _ := cs[0].(types.Name); n == model.IndexedCS {
			if lookup, _, err := ctx.DereferenceStreamDict(cs[3]); err == nil && lookup != nil {
				l := *lookup
				if err := decodeLimited(&l, maxAuxStreamBytes); err != nil {
					return model.Image{}, fmt.Errorf("colour lookup table: %w", err)
				}
				cs = slices.Clone(cs)
				cs[3] = l
				img.Dict["ColorSpace"] = cs
			}
		}
	}
	out, err := pdfcpu.ExtractImage(ctx, &img, false, ref.name, ref.ref.ObjectNumber.Value(), false)
	if err != nil {
		return model.Image{}, err
	}
	if out == nil {
		return model.Image{}, errors.New("pdfcpu extracted nothing")
	}
	return *out, nil
}

// decodeImageStream checks an image's declared size against
// maxImagePixels and decodes its stream with no more room than that size
// needs, so a stream declaring 100×100 pixels that inflates to gigabytes
// is cut off within 64 KiB of its 10 KB.
func decodeImageStream(ctx *model.Context, sd *types.StreamDict) error {
	w, err := ctx.DereferenceInteger(sd.Dict["Width"])
	if err != nil || w == nil {
		return fmt.Errorf("image without a valid Width: %w", cmp.Or(err, errors.New("missing")))
	}
	h, err := ctx.DereferenceInteger(sd.Dict["Height"])
	if err != nil || h == nil {
		return fmt.Errorf("image without a valid Height: %w", cmp.Or(err, errors.New("missing")))
	}
	if err := checkPixels(w.Value(), h.Value()); err != nil {
		return err
	}
	bpc := 8
	if b, err := ctx.DereferenceInteger(sd.Dict["BitsPerComponent"]); err == nil && b != nil {
		bpc = b.Value()
	}
	if bpc < 1 || bpc > 16 {
		return fmt.Errorf("image with %d bits per component", bpc)
	}
	csComps, err := pdfcpu.ColorSpaceComponents(ctx.XRefTable, sd)
	if err != nil {
		return fmt.Errorf("image colour space: %w", err)
	}
	comps := csComps
	if im := sd.Dict.BooleanEntry("ImageMask"); im != nil && *im {
		comps, bpc = 1, 1
	}
	if comps < 1 || comps > 4 {
		comps = 4 // unknown or DeviceN: the most an image renders with
	}
	// Rows are whole bytes; PNG predictors add a tag byte to each row.
	row := (int64(w.Value())*int64(comps)*int64(bpc) + 7) / 8
	need := (row + 1) * int64(h.Value())
	if need > maxImageBytes {
		return limitErrorf("image %dx%d with %d channels of %d bits needs %d bytes, over the %d-byte limit",
			w.Value(), h.Value(), comps, bpc, need, maxImageBytes)
	}
	if fpl := sd.FilterPipeline; len(fpl) > 0 && fpl[len(fpl)-1].Name == filter.DCT {
		// As pdfcpu's own extraction does: a CMYK JPEG is decoded to
		// pixels, any other is passed on as JPEG (and bounded by its
		// header in DecodeQRBytes).
		sd.CSComponents = csComps
	}
	// Slack for writers that pad the last rows; decoding stops one byte
	// past the limit, so a bomb costs at most this much.
	if err := decodeLimited(sd, need+64<<10); err != nil {
		if errors.Is(err, filter.ErrDecodeLimitExceeded) {
			return limitErrorf("image %dx%d: its stream decodes to more than the %d bytes that size needs",
				w.Value(), h.Value(), need)
		}
		return err
	}
	return nil
}

// decodeLimited decodes sd's filters, each stage stopping at limit bytes.
// Filters Go cannot decode (JPX, JBIG2) are left for the image decoder to
// refuse.
func decodeLimited(sd *types.StreamDict, limit int64) error {
	err := sd.DecodeWithLimit(limit)
	if errors.Is(err, filter.ErrUnsupportedFilter) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("decode stream: %w", err)
	}
	return nil
}

// checkInflated inflates, into nothing, every zlib stream found after a
// "stream" keyword and refuses the PDF when they add up to more than
// limit. pdfcpu keeps each object stream it decodes; its limits are per
// stream, so without a total a file of many small bombs could still grow
// the agent by gigabytes. Scanning the raw bytes needs no parsing and keeps
// nothing: an encrypted or non-Flate stream fails the zlib header and
// counts as nothing (those are bounded per stream by pdfcpu).
func checkInflated(pdf []byte, limit int64) error {
	var total int64
	rest := pdf
	for {
		i := bytes.Index(rest, []byte("stream"))
		if i < 0 {
			return nil
		}
		endKeyword := i >= 3 && string(rest[i-3:i]) == "end"
		rest = rest[i+len("stream"):]
		if endKeyword {
			continue
		}
		data := bytes.TrimPrefix(rest, []byte("\r"))
		data = bytes.TrimPrefix(data, []byte("\n"))
		zr, err := zlib.NewReader(bytes.NewReader(data))
		if err != nil {
			continue
		}
		n, _ := io.Copy(io.Discard, io.LimitReader(zr, limit-total+1))
		zr.Close()
		if total += n; total > limit {
			return limitErrorf("PDF streams inflate to more than the %d MiB limit", limit>>20)
		}
	}
}

// readAll reads a rendered image; its size follows from the pixels
// decodeImageStream allowed.
func readAll(img model.Image) ([]byte, error) {
	if img.Reader == nil {
		return nil, errors.New("no image data")
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
