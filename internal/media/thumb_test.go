package media

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
)

// withOrientation inserts an EXIF block with the given Orientation tag
// right after a JPEG's SOI marker, as cameras write it.
func withOrientation(jpg []byte, orient uint16) []byte {
	var tiff bytes.Buffer
	tiff.WriteString("MM\x00\x2a")
	binary.Write(&tiff, binary.BigEndian, uint32(8)) // IFD0 offset
	binary.Write(&tiff, binary.BigEndian, uint16(1)) // one entry
	binary.Write(&tiff, binary.BigEndian, uint16(0x0112))
	binary.Write(&tiff, binary.BigEndian, uint16(3)) // SHORT
	binary.Write(&tiff, binary.BigEndian, uint32(1))
	binary.Write(&tiff, binary.BigEndian, orient)
	binary.Write(&tiff, binary.BigEndian, uint16(0))
	binary.Write(&tiff, binary.BigEndian, uint32(0)) // no next IFD
	seg := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	var out bytes.Buffer
	out.Write(jpg[:2])
	out.Write([]byte{0xff, 0xe1})
	binary.Write(&out, binary.BigEndian, uint16(len(seg)+2))
	out.Write(seg)
	out.Write(jpg[2:])
	return out.Bytes()
}

// halves is w x h, red on the left half and blue on the right.
func halves(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA{255, 0, 0, 255}
			if x >= w/2 {
				c = color.NRGBA{0, 0, 255, 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

func near(a, b uint8) bool {
	d := int(a) - int(b)
	return d > -40 && d < 40
}

func TestInspectJPEGWithOrientation(t *testing.T) {
	data := withOrientation(encodeJPEG(t, halves(800, 400)), 6)
	if got := exifOrientation(bytes.NewReader(data)); got != 6 {
		t.Fatalf("orientation = %d, want 6", got)
	}
	pic, err := inspect(bytes.NewReader(data), "image/jpeg")
	if err != nil {
		t.Fatal(err)
	}
	// Rotated a quarter turn clockwise: displayed 400 wide, 800 high.
	if pic.width != 400 || pic.height != 800 {
		t.Errorf("size = %dx%d, want 400x800 (as displayed)", pic.width, pic.height)
	}
	if pic.thumbMime != "image/jpeg" || pic.thumb == nil {
		t.Fatalf("thumbnail %q, %d bytes; want a JPEG", pic.thumbMime, len(pic.thumb))
	}
	th, err := jpeg.Decode(bytes.NewReader(pic.thumb))
	if err != nil {
		t.Fatalf("thumbnail does not decode: %v", err)
	}
	if b := th.Bounds(); b.Dx() != 160 || b.Dy() != ThumbSize {
		t.Errorf("thumbnail is %dx%d, want 160x%d", b.Dx(), b.Dy(), ThumbSize)
	}
	// The red left half of the sensor image is the top after turning.
	top := color.NRGBAModel.Convert(th.At(80, 20)).(color.NRGBA)
	bottom := color.NRGBAModel.Convert(th.At(80, 300)).(color.NRGBA)
	if !near(top.R, 255) || !near(top.B, 0) || !near(bottom.B, 255) || !near(bottom.R, 0) {
		t.Errorf("top %v, bottom %v: want red above blue", top, bottom)
	}
}

func TestInspectTransparentPNG(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 400, 400))
	for y := 0; y < 400; y++ {
		for x := 0; x < 200; x++ {
			img.SetNRGBA(x, y, color.NRGBA{0, 200, 0, 255}) // right half stays transparent
		}
	}
	pic, err := inspect(bytes.NewReader(encodePNG(t, img)), "image/png")
	if err != nil {
		t.Fatal(err)
	}
	if pic.thumbMime != "image/png" {
		t.Fatalf("thumbnail type %q, want image/png (it has transparency)", pic.thumbMime)
	}
	th, err := png.Decode(bytes.NewReader(pic.thumb))
	if err != nil {
		t.Fatal(err)
	}
	left := color.NRGBAModel.Convert(th.At(10, 10)).(color.NRGBA)
	right := color.NRGBAModel.Convert(th.At(300, 10)).(color.NRGBA)
	if b := th.Bounds(); b.Dx() != ThumbSize || b.Dy() != ThumbSize {
		t.Errorf("thumbnail is %dx%d, want %dx%[3]d", b.Dx(), b.Dy(), ThumbSize)
	}
	if left != (color.NRGBA{0, 200, 0, 255}) || right.A != 0 {
		t.Errorf("left %v right %v: want opaque green, then transparent", left, right)
	}
}

func TestInspectSmallImageNeedsNoThumbnail(t *testing.T) {
	pic, err := inspect(bytes.NewReader(encodePNG(t, solid(120, 80, color.White))), "image/png")
	if err != nil {
		t.Fatal(err)
	}
	if pic.width != 120 || pic.height != 80 || pic.thumb != nil {
		t.Errorf("got %dx%d with a %d-byte thumbnail; want 120x80 and none", pic.width, pic.height, len(pic.thumb))
	}
}

func TestInspectRefusesToDecodeHugeImages(t *testing.T) {
	// A tiny PNG whose header claims 60000 x 60000 pixels: decoding it
	// would need gigabytes. Its size is reported, no thumbnail is made.
	data := encodePNG(t, solid(2, 2, color.White))
	ihdr := data[8+8 : 8+8+13] // after the signature, length and "IHDR"
	binary.BigEndian.PutUint32(ihdr[0:], 60000)
	binary.BigEndian.PutUint32(ihdr[4:], 60000)
	binary.BigEndian.PutUint32(data[8+8+13:], crc32.ChecksumIEEE(data[12:8+8+13]))
	pic, err := inspect(bytes.NewReader(data), "image/png")
	if err != nil {
		t.Fatal(err)
	}
	if pic.width != 60000 || pic.thumb != nil {
		t.Errorf("got width %d, %d-byte thumbnail; want 60000 and none", pic.width, len(pic.thumb))
	}
}

func TestInspectUndecodableImage(t *testing.T) {
	pic, err := inspect(bytes.NewReader([]byte("\xff\xd8\xff\xe0garbage")), "image/jpeg")
	if err != nil || pic.thumb != nil || pic.width != 0 {
		t.Errorf("got %+v, %v; want an empty picture and no error", pic, err)
	}
}

func TestOrientateAllEight(t *testing.T) {
	// A 3x2 image with a marked top-left corner; each orientation moves
	// it where EXIF says it belongs.
	src := solid(3, 2, color.Black)
	src.SetNRGBA(0, 0, color.NRGBA{255, 255, 255, 255})
	for _, tc := range []struct {
		orient     int
		w, h, x, y int
	}{
		{1, 3, 2, 0, 0}, {2, 3, 2, 2, 0}, {3, 3, 2, 2, 1}, {4, 3, 2, 0, 1},
		{5, 2, 3, 0, 0}, {6, 2, 3, 1, 0}, {7, 2, 3, 1, 2}, {8, 2, 3, 0, 2},
	} {
		got := orientate(src, tc.orient)
		if b := got.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
			t.Errorf("orientation %d: %dx%d, want %dx%d", tc.orient, b.Dx(), b.Dy(), tc.w, tc.h)
			continue
		}
		if got.NRGBAAt(tc.x, tc.y).R != 255 {
			t.Errorf("orientation %d: marked pixel not at (%d,%d)", tc.orient, tc.x, tc.y)
		}
	}
}

// BenchmarkThumbnail12MP measures a phone photo's preview: 4000 x 3000
// JPEG, decode + downscale + encode.
func BenchmarkThumbnail12MP(b *testing.B) {
	src := image.NewYCbCr(image.Rect(0, 0, 4000, 3000), image.YCbCrSubsampleRatio420)
	for i := range src.Y {
		src.Y[i] = uint8(i * 7)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, src, &jpeg.Options{Quality: 85}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pic, err := inspect(bytes.NewReader(data), "image/jpeg")
		if err != nil || pic.thumb == nil {
			b.Fatalf("no thumbnail: %v", err)
		}
	}
}
