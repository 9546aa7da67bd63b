package media

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/webp"
)

// ThumbSize is the longest side of a thumbnail, in pixels: enough for a
// sharp preview in a conversation or a product list on a phone.
const ThumbSize = 320

// maxPixels bounds the images that get a thumbnail. Decoding needs memory
// in proportion to the pixels, and a small file can claim a huge picture;
// bigger images are stored and served but previewed as they are.
const maxPixels = 50_000_000

// picture is what is known of an image file after looking at it.
type picture struct {
	width, height int    // as displayed (after EXIF rotation)
	thumb         []byte // nil when no thumbnail is needed or possible
	thumbMime     string
}

type decoder struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

// decoders are the formats OneBox can preview; others (HEIC, TIFF, BMP)
// are stored and served without a thumbnail.
var decoders = map[string]decoder{
	"image/jpeg": {jpeg.DecodeConfig, jpeg.Decode},
	"image/png":  {png.DecodeConfig, png.Decode},
	"image/gif":  {gif.DecodeConfig, gif.Decode},
	"image/webp": {webp.DecodeConfig, webp.Decode},
}

// inspect reads an image's size and, when it is larger than ThumbSize,
// makes its thumbnail. A file that does not decode is not an error: it is
// still a file of that type, shown without a preview.
func inspect(r io.ReadSeeker, mimeType string) (picture, error) {
	dec, ok := decoders[mimeType]
	if !ok {
		return picture{}, nil
	}
	cfg, err := dec.config(r)
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 {
		return picture{}, nil
	}
	orient := 1
	if mimeType == "image/jpeg" {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return picture{}, fmt.Errorf("rewind image: %w", err)
		}
		orient = exifOrientation(r)
	}
	p := picture{width: cfg.Width, height: cfg.Height}
	if orient >= 5 {
		p.width, p.height = p.height, p.width
	}
	if max(cfg.Width, cfg.Height) <= ThumbSize || int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return p, nil
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return picture{}, fmt.Errorf("rewind image: %w", err)
	}
	img, err := dec.decode(r)
	if err != nil {
		return p, nil
	}
	small := orientate(downscale(img, ThumbSize), orient)
	var buf bytes.Buffer
	if opaque(small) {
		err = jpeg.Encode(&buf, small, &jpeg.Options{Quality: 80})
		p.thumbMime = "image/jpeg"
	} else {
		err = png.Encode(&buf, small)
		p.thumbMime = "image/png"
	}
	if err != nil {
		return picture{}, fmt.Errorf("encode thumbnail: %w", err)
	}
	p.thumb = buf.Bytes()
	return p, nil
}

// pixelFunc returns the premultiplied 8-bit colour of a pixel.
type pixelFunc func(x, y int) (r, g, b, a uint32)

// pixels picks a fast accessor for the common decoded types; the generic
// At() path converts through interfaces and is several times slower.
func pixels(img image.Image) pixelFunc {
	switch m := img.(type) {
	case *image.YCbCr:
		return func(x, y int) (uint32, uint32, uint32, uint32) {
			yi, ci := m.YOffset(x, y), m.COffset(x, y)
			r, g, b := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
			return uint32(r), uint32(g), uint32(b), 255
		}
	case *image.NRGBA:
		return func(x, y int) (uint32, uint32, uint32, uint32) {
			i := m.PixOffset(x, y)
			a := uint32(m.Pix[i+3])
			return uint32(m.Pix[i]) * a / 255, uint32(m.Pix[i+1]) * a / 255, uint32(m.Pix[i+2]) * a / 255, a
		}
	case *image.RGBA:
		return func(x, y int) (uint32, uint32, uint32, uint32) {
			i := m.PixOffset(x, y)
			return uint32(m.Pix[i]), uint32(m.Pix[i+1]), uint32(m.Pix[i+2]), uint32(m.Pix[i+3])
		}
	case *image.Gray:
		return func(x, y int) (uint32, uint32, uint32, uint32) {
			v := uint32(m.Pix[m.PixOffset(x, y)])
			return v, v, v, 255
		}
	case *image.Paletted:
		pal := make([][4]uint32, len(m.Palette))
		for i, c := range m.Palette {
			r, g, b, a := c.RGBA()
			pal[i] = [4]uint32{r >> 8, g >> 8, b >> 8, a >> 8}
		}
		return func(x, y int) (uint32, uint32, uint32, uint32) {
			i := int(m.Pix[m.PixOffset(x, y)])
			if i >= len(pal) {
				return 0, 0, 0, 0
			}
			c := pal[i]
			return c[0], c[1], c[2], c[3]
		}
	}
	return func(x, y int) (uint32, uint32, uint32, uint32) {
		r, g, b, a := img.At(x, y).RGBA()
		return r >> 8, g >> 8, b >> 8, a >> 8
	}
}

// downscale shrinks img so its longest side is size, averaging every
// source pixel into the one it lands in (a box filter): no aliasing when
// shrinking a lot, and one pass over the source.
func downscale(img image.Image, size int) *image.NRGBA {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	tw, th := size, size
	if w >= h {
		th = max(1, h*size/w)
	} else {
		tw = max(1, w*size/h)
	}
	if m, ok := img.(*image.YCbCr); ok {
		return downscaleYCbCr(m, tw, th)
	}
	px := pixels(img)
	dst := image.NewNRGBA(image.Rect(0, 0, tw, th))
	for ty := 0; ty < th; ty++ {
		y0, y1 := ty*h/th, max((ty+1)*h/th, ty*h/th+1)
		for tx := 0; tx < tw; tx++ {
			x0, x1 := tx*w/tw, max((tx+1)*w/tw, tx*w/tw+1)
			var sr, sg, sb, sa, n uint32
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					r, g, bl, a := px(b.Min.X+x, b.Min.Y+y)
					sr, sg, sb, sa, n = sr+r, sg+g, sb+bl, sa+a, n+1
				}
			}
			i := dst.PixOffset(tx, ty)
			a := sa / n
			if a > 0 {
				// Back from premultiplied: the average colour of the
				// visible part, not darkened by transparent pixels.
				dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2] = uint8(min(255, sr*255/sa)), uint8(min(255, sg*255/sa)), uint8(min(255, sb*255/sa))
			}
			dst.Pix[i+3] = uint8(a)
		}
	}
	return dst
}

// downscaleYCbCr is downscale for decoded JPEGs, the common case: it
// averages the luma and chroma planes and converts each thumbnail pixel
// once, instead of converting every source pixel. Averaging before the
// conversion is exact but for rounding, since the conversion is linear.
func downscaleYCbCr(m *image.YCbCr, tw, th int) *image.NRGBA {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	dst := image.NewNRGBA(image.Rect(0, 0, tw, th))
	for ty := 0; ty < th; ty++ {
		y0, y1 := ty*h/th, max((ty+1)*h/th, ty*h/th+1)
		for tx := 0; tx < tw; tx++ {
			x0, x1 := tx*w/tw, max((tx+1)*w/tw, tx*w/tw+1)
			var sy, scb, scr, n uint32
			for y := y0; y < y1; y++ {
				row := m.YOffset(b.Min.X+x0, b.Min.Y+y)
				for x := x0; x < x1; x++ {
					ci := m.COffset(b.Min.X+x, b.Min.Y+y)
					sy += uint32(m.Y[row+x-x0])
					scb += uint32(m.Cb[ci])
					scr += uint32(m.Cr[ci])
					n++
				}
			}
			r, g, bl := color.YCbCrToRGB(uint8(sy/n), uint8(scb/n), uint8(scr/n))
			i := dst.PixOffset(tx, ty)
			dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2], dst.Pix[i+3] = r, g, bl, 255
		}
	}
	return dst
}

func opaque(m *image.NRGBA) bool {
	for i := 3; i < len(m.Pix); i += 4 {
		if m.Pix[i] != 255 {
			return false
		}
	}
	return true
}

// orientate turns a picture the way its EXIF orientation (1-8) says it
// is meant to be seen; phones store photos as the sensor saw them.
func orientate(src *image.NRGBA, orient int) *image.NRGBA {
	if orient < 2 || orient > 8 {
		return src
	}
	w, h := src.Bounds().Dx(), src.Bounds().Dy()
	dw, dh := w, h
	if orient >= 5 {
		dw, dh = h, w
	}
	dst := image.NewNRGBA(image.Rect(0, 0, dw, dh))
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			var sx, sy int
			switch orient {
			case 2:
				sx, sy = w-1-x, y
			case 3:
				sx, sy = w-1-x, h-1-y
			case 4:
				sx, sy = x, h-1-y
			case 5:
				sx, sy = y, x
			case 6:
				sx, sy = y, h-1-x
			case 7:
				sx, sy = w-1-y, h-1-x
			case 8:
				sx, sy = w-1-y, x
			}
			copy(dst.Pix[dst.PixOffset(x, y):][:4], src.Pix[src.PixOffset(sx, sy):][:4])
		}
	}
	return dst
}

// exifOrientation finds the Orientation tag (0x0112) of a JPEG's EXIF
// block, 1 (as stored) when there is none. It reads only the segments
// before the image data, and at most 64 KiB of the EXIF block.
func exifOrientation(r io.Reader) int {
	br := io.LimitReader(r, 1<<20)
	var soi [2]byte
	if _, err := io.ReadFull(br, soi[:]); err != nil || soi != [2]byte{0xff, 0xd8} {
		return 1
	}
	for {
		var m [4]byte
		if _, err := io.ReadFull(br, m[:]); err != nil || m[0] != 0xff {
			return 1
		}
		marker, n := m[1], int(binary.BigEndian.Uint16(m[2:]))-2
		if marker == 0xda || marker == 0xd9 || n < 0 {
			return 1
		}
		if marker != 0xe1 || n > 64<<10 {
			if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
				return 1
			}
			continue
		}
		seg := make([]byte, n)
		if _, err := io.ReadFull(br, seg); err != nil {
			return 1
		}
		if !bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			continue
		}
		return tiffOrientation(seg[6:])
	}
}

func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	ifd := int(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > len(t) {
		return 1
	}
	count := int(bo.Uint16(t[ifd:]))
	for i := 0; i < count; i++ {
		e := ifd + 2 + 12*i
		if e+12 > len(t) {
			return 1
		}
		if bo.Uint16(t[e:]) == 0x0112 && bo.Uint16(t[e+2:]) == 3 {
			if v := int(bo.Uint16(t[e+8:])); v >= 1 && v <= 8 {
				return v
			}
			return 1
		}
	}
	return 1
}
