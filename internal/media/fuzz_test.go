package media

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// countingReader counts what a parser consumed of its input.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// tiffBlock is a TIFF header with one IFD entry, as EXIF carries it.
func tiffBlock(bo binary.ByteOrder, tag, typ uint16, value uint16) []byte {
	var b bytes.Buffer
	if bo == binary.LittleEndian {
		b.WriteString("II\x2a\x00")
	} else {
		b.WriteString("MM\x00\x2a")
	}
	binary.Write(&b, bo, uint32(8))
	binary.Write(&b, bo, uint16(1))
	binary.Write(&b, bo, tag)
	binary.Write(&b, bo, typ)
	binary.Write(&b, bo, uint32(1))
	binary.Write(&b, bo, value)
	binary.Write(&b, bo, uint16(0))
	binary.Write(&b, bo, uint32(0))
	return b.Bytes()
}

// FuzzExifOrientation feeds arbitrary bytes to the JPEG segment walk and
// the TIFF (EXIF) tag reader: whatever the input, the answer is an
// orientation from 1 to 8 (1 when there is none or the input is bad), no
// input panics, and the walk reads no more than its 1 MiB bound.
func FuzzExifOrientation(f *testing.F) {
	jpg := encodeJPEG(f, solid(16, 8, color.NRGBA{10, 200, 30, 255}))
	for o := uint16(1); o <= 8; o++ {
		f.Add(withOrientation(jpg, o))
	}
	f.Add(jpg)
	f.Add(withOrientation(jpg, 9))
	f.Add(withOrientation(jpg, 6)[:40]) // cut inside the EXIF block
	f.Add(tiffBlock(binary.LittleEndian, 0x0112, 3, 6))
	f.Add(tiffBlock(binary.BigEndian, 0x0112, 3, 8))
	f.Add(tiffBlock(binary.BigEndian, 0x0112, 4, 8)) // a LONG, not a SHORT
	f.Add([]byte("\xff\xd8\xff\xe1\x00\x02"))
	f.Add([]byte("\xff\xd8\xff\xe1\xff\xffExif\x00\x00MM"))
	f.Add([]byte("II\x2a\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: bytes.NewReader(data)}
		if o := exifOrientation(cr); o < 1 || o > 8 {
			t.Fatalf("exifOrientation = %d for %q", o, truncated(data))
		}
		if cr.n > 1<<20 {
			t.Fatalf("the segment walk read %d bytes, past its 1 MiB bound", cr.n)
		}
		if o := tiffOrientation(data); o < 1 || o > 8 {
			t.Fatalf("tiffOrientation = %d for %q", o, truncated(data))
		}
	})
}

// fuzzMaxPixels bounds the pictures FuzzInspect decodes. inspect's own
// bound (maxPixels) lets a real photo be previewed; a fuzzer that made
// every input claim 50 million pixels would spend its time allocating.
// TestInspectRefusesToDecodeHugeImages covers the bound itself.
const fuzzMaxPixels = 250_000

var fuzzMimes = []string{"image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf"}

// FuzzInspect feeds arbitrary bytes, as each image type OneBox previews,
// to inspect: no input panics or errors (an image that does not decode
// is a file without a preview), every thumbnail decodes as the type it
// is said to be and fits ThumbSize, and the size reported is the
// picture's, turned by its EXIF orientation.
func FuzzInspect(f *testing.F) {
	big := halves(400, 240) // over ThumbSize: gets a thumbnail
	jpg := encodeJPEG(f, big)
	var g bytes.Buffer
	if err := gif.Encode(&g, big, &gif.Options{NumColors: 4}); err != nil {
		f.Fatal(err)
	}
	transparent := image.NewNRGBA(image.Rect(0, 0, 330, 20))
	for _, seed := range []struct {
		mime uint8
		data []byte
	}{
		{0, jpg}, {0, withOrientation(jpg, 6)}, {0, withOrientation(jpg, 3)}, {0, jpg[:len(jpg)/2]},
		{1, encodePNG(f, big)}, {1, encodePNG(f, transparent)}, {1, encodePNG(f, solid(8, 8, color.Black))},
		{2, g.Bytes()}, {3, []byte("RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00")},
		{4, []byte("%PDF-1.4\n")}, {1, []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xff\xff\xff\xff\xff\xff\xff\x08\x06\x00\x00\x00")},
	} {
		f.Add(seed.mime, seed.data)
	}
	f.Fuzz(func(t *testing.T, pick uint8, data []byte) {
		mimeType := fuzzMimes[int(pick)%len(fuzzMimes)]
		if dec, ok := decoders[mimeType]; ok {
			cfg, err := dec.config(bytes.NewReader(data))
			if err == nil && int64(cfg.Width)*int64(cfg.Height) > fuzzMaxPixels {
				return
			}
		}
		start := time.Now()
		p, err := inspect(bytes.NewReader(data), mimeType)
		if err != nil {
			t.Fatalf("inspect %s %q: %v; a bad image must be a file without a preview", mimeType, truncated(data), err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("inspect %s took %v", mimeType, took)
		}
		dec, ok := decoders[mimeType]
		if !ok {
			if p.width != 0 || p.height != 0 || p.thumb != nil {
				t.Fatalf("%s is not previewed, but inspect answered %+v", mimeType, p)
			}
			return
		}
		cfg, cerr := dec.config(bytes.NewReader(data))
		if cerr != nil {
			if p.width != 0 || p.thumb != nil {
				t.Fatalf("an image whose header does not decode got %dx%d and a thumbnail %v", p.width, p.height, p.thumb != nil)
			}
			return
		}
		w, h := cfg.Width, cfg.Height
		if mimeType == "image/jpeg" && exifOrientation(bytes.NewReader(data)) >= 5 {
			w, h = h, w
		}
		if cfg.Width > 0 && cfg.Height > 0 && (p.width != w || p.height != h) {
			t.Fatalf("size %dx%d, want %dx%d", p.width, p.height, w, h)
		}
		if p.thumb == nil {
			return
		}
		var tc image.Config
		switch p.thumbMime {
		case "image/jpeg":
			tc, err = jpeg.DecodeConfig(bytes.NewReader(p.thumb))
		case "image/png":
			tc, err = png.DecodeConfig(bytes.NewReader(p.thumb))
		default:
			t.Fatalf("thumbnail type %q", p.thumbMime)
		}
		if err != nil {
			t.Fatalf("the %s thumbnail does not decode: %v", p.thumbMime, err)
		}
		if tc.Width < 1 || tc.Height < 1 || max(tc.Width, tc.Height) > ThumbSize {
			t.Fatalf("thumbnail %dx%d, want within %d", tc.Width, tc.Height, ThumbSize)
		}
		if (tc.Width >= tc.Height) != (p.width >= p.height) && min(tc.Width, tc.Height) > 1 {
			t.Fatalf("thumbnail %dx%d is not turned like the picture %dx%d", tc.Width, tc.Height, p.width, p.height)
		}
	})
}

// FuzzSniff: any content gets a type, the same every time, and the type
// a client claims changes nothing but telling an audio-only recording
// from a video in the same container.
func FuzzSniff(f *testing.F) {
	f.Add(encodePNG(f, solid(4, 4, color.White)), "image/png")
	f.Add(encodeJPEG(f, solid(4, 4, color.White)), "text/html")
	f.Add([]byte("%PDF-1.7\n"), "")
	f.Add([]byte("GIF89a"), "image/gif")
	f.Add([]byte("\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A mp42isom"), "audio/mp4")
	f.Add([]byte("\x1aE\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01B\xf2\x81\x04B\xf3\x81\x08B\x82\x84webm"), "audio/webm")
	f.Add([]byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1eOpusHead"), "")
	f.Add(zipOf(f, "word/document.xml", "[Content_Types].xml"), "application/zip")
	f.Add(zipOf(f, "xl/workbook.xml"), "")
	f.Add(compoundFile("WordDocument"), "application/msword")
	f.Add([]byte("MZ\x90\x00"), "image/jpeg")
	f.Add([]byte("<html><script>"), "image/png")
	f.Add([]byte("PK\x05\x06\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00"), "")
	f.Fuzz(func(t *testing.T, data []byte, claimed string) {
		r := bytes.NewReader(data)
		got := Sniff(r, int64(len(data)), "")
		if got == "" {
			t.Fatalf("no type for %q", truncated(data))
		}
		if again := Sniff(r, int64(len(data)), ""); again != got {
			t.Fatalf("sniffed %q, then %q", got, again)
		}
		withClaim := Sniff(r, int64(len(data)), claimed)
		if withClaim != got && !(strings.HasPrefix(got, "video/") && withClaim == "audio/"+strings.TrimPrefix(got, "video/")) {
			t.Fatalf("claiming %q turned %q into %q", claimed, got, withClaim)
		}
	})
}

// FuzzSignedURL: whatever a URL's exp and sig hold, checking them never
// panics and accepts only the signature OneBox made for that tenant,
// media and a time not yet past; a real signature works for its own
// media only.
func FuzzSignedURL(f *testing.F) {
	now := time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC)
	s := signer{key: []byte("0123456789abcdef0123456789abcdef"), ttl: 6 * time.Hour, now: func() time.Time { return now }}
	real := s.query("t1", "m1", s.ttl)
	exp, sig, _ := strings.Cut(strings.TrimPrefix(real, "exp="), "&sig=")
	old := strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)
	for _, seed := range [][4]string{
		{"t1", "m1", exp, sig}, {"t2", "m1", exp, sig}, {"t1", "m2", exp, sig},
		{"t1", "m1", old, s.mac("t1", "m1", now.Add(-time.Hour).Unix())},
		{"t1", "m1", exp + "0", sig}, {"t1", "m1", "-1", sig}, {"t1", "m1", "9223372036854775807", sig},
		{"t1", "m1", "99999999999999999999", sig}, {"t1", "m1", "", sig}, {"t1", "m1", exp, ""},
		{"t1", "m1", " " + exp, sig}, {"t1", "m1", "+" + exp, sig}, {"t1", "m1", exp, sig + "="},
		{"t1", "m1", exp, strings.ToUpper(sig)}, {"", "", "0", ""}, {"t1\x00m1", "", exp, sig},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, tenant, id, exp, sig string) {
		ok := s.valid(tenant, id, exp, sig)
		n, err := strconv.ParseInt(exp, 10, 64)
		if ok && (err != nil || n < now.Unix() || sig != s.mac(tenant, id, n)) {
			t.Fatalf("accepted tenant %q media %q exp %q sig %q, which OneBox never signed or has expired", tenant, id, exp, sig)
		}
		if err == nil && n >= now.Unix() && sig == s.mac(tenant, id, n) && !ok {
			t.Fatalf("refused a current signature: tenant %q media %q exp %q", tenant, id, exp)
		}
		// Tenant and media ids never hold a NUL byte (they are UUIDs),
		// which is what separates them in the signed string.
		if strings.ContainsRune(tenant+id, 0) {
			return
		}
		q := s.query(tenant, id, s.ttl)
		e, g, _ := strings.Cut(strings.TrimPrefix(q, "exp="), "&sig=")
		if !s.valid(tenant, id, e, g) {
			t.Fatalf("its own fresh signature is refused for tenant %q media %q", tenant, id)
		}
		if s.valid(tenant+"x", id, e, g) || s.valid(tenant, id+"x", e, g) || s.valid(id, tenant, e, g) && id != tenant {
			t.Fatalf("a signature for tenant %q media %q works for another", tenant, id)
		}
	})
}

func truncated(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
