package invoice

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // QR images may come in any common format
	_ "image/jpeg" //
	_ "image/png"  //
	"sync"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
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

// DecodeQRBytes decodes an encoded image (PNG, JPEG, GIF).
func DecodeQRBytes(b []byte) (string, error) {
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
// QR payload found, with how many images were examined.
func QRFromPDF(pdf []byte) (payload string, images int, err error) {
	var found string
	var lastErr error
	digest := func(img model.Image, _ bool, _ int) error {
		images++
		if found != "" {
			return nil
		}
		data, err := readAll(img)
		if err != nil {
			lastErr = err
			return nil
		}
		s, err := DecodeQRBytes(data)
		if err != nil {
			lastErr = fmt.Errorf("image %s on page %d: %w", img.Name, img.PageNr, err)
			return nil
		}
		found = s
		return nil
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
		return "", images, fmt.Errorf("none of %d images is a readable QR code (last: %v)", images, lastErr)
	}
}

// extractImages reads the PDF and hands every page's images to digest. It
// skips pdfcpu's full validation (ReadValidateAndOptimize): a probe only
// needs the images, and validation is most of the library's code and time.
func extractImages(pdf []byte, digest func(model.Image, bool, int) error) (err error) {
	// pdfcpu reports some malformed input by panicking (its fault package);
	// outside its API wrappers that must become an error here.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed PDF: %v", r)
		}
	}()
	conf := pdfConfig()
	conf.Cmd = model.EXTRACTIMAGES
	ctx, err := api.ReadContext(bytes.NewReader(pdf), conf)
	if err != nil {
		return err
	}
	if err := ctx.EnsurePageCount(); err != nil {
		return err
	}
	if err := api.OptimizeContext(ctx); err != nil {
		return err
	}
	for p := 1; p <= ctx.PageCount; p++ {
		imgs, err := pdfcpu.ExtractPageImages(ctx, p, false)
		if err != nil {
			return err
		}
		for _, img := range imgs {
			if err := digest(img, false, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

func readAll(img model.Image) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(img); err != nil {
		return nil, fmt.Errorf("image %s: %w", img.Name, err)
	}
	return buf.Bytes(), nil
}
