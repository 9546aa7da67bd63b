package media

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
	"unicode/utf16"

	"github.com/onebox/onebox/internal/inbox"
)

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func solid(w, h int, c color.Color) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, c)
		}
	}
	return img
}

func zipOf(t testing.TB, files ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := 0; i+1 < len(files); i += 2 {
		var w interface{ Write([]byte) (int, error) }
		var err error
		if files[i] == "mimetype" {
			w, err = zw.CreateHeader(&zip.FileHeader{Name: "mimetype", Method: zip.Store})
		} else {
			w, err = zw.Create(files[i])
		}
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(files[i+1]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// compoundFile builds a minimal Compound File (512-byte sectors): sector 0
// is the FAT, sector 1 the directory holding the given stream names.
func compoundFile(names ...string) []byte {
	le := binary.LittleEndian
	f := make([]byte, 512*3)
	copy(f, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
	le.PutUint16(f[0x18:], 0x3e)
	le.PutUint16(f[0x1a:], 3)
	le.PutUint16(f[0x1c:], 0xfffe)
	le.PutUint16(f[0x1e:], 9)
	le.PutUint32(f[0x2c:], 1) // one FAT sector
	le.PutUint32(f[0x30:], 1) // directory starts at sector 1
	for i := 0; i < 109; i++ {
		le.PutUint32(f[0x4c+4*i:], 0xffffffff)
	}
	le.PutUint32(f[0x4c:], 0) // the FAT is sector 0
	fat := f[512:1024]
	for i := 0; i < 128; i++ {
		le.PutUint32(fat[4*i:], 0xffffffff)
	}
	le.PutUint32(fat[0:], 0xfffffffd) // sector 0: FAT
	le.PutUint32(fat[4:], 0xfffffffe) // sector 1: end of the directory chain
	dir := f[1024:1536]
	for i, n := range append([]string{"Root Entry"}, names...) {
		if i >= 4 {
			break
		}
		e := dir[128*i:]
		u := utf16.Encode([]rune(n))
		for j, c := range u {
			le.PutUint16(e[2*j:], c)
		}
		le.PutUint16(e[0x40:], uint16(2*len(u)+2))
		e[0x42] = 2
	}
	return f
}

func TestSniff(t *testing.T) {
	var gifBuf bytes.Buffer
	gif.Encode(&gifBuf, solid(4, 4, color.White), nil)
	for _, tc := range []struct {
		name    string
		data    []byte
		claimed string
		want    string
		allowed bool
	}{
		{"png", encodePNG(t, solid(2, 2, color.White)), "", "image/png", true},
		{"jpeg claimed as png", encodeJPEG(t, solid(2, 2, color.White)), "image/png", "image/jpeg", true},
		{"gif", gifBuf.Bytes(), "", "image/gif", true},
		{"webp", []byte("RIFF\x24\x00\x00\x00WEBPVP8 "), "", "image/webp", true},
		{"heic", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), "", "image/heic", true},
		{"pdf", []byte("%PDF-1.7\n%..."), "application/octet-stream", "application/pdf", true},
		{"mp3 with id3", []byte("ID3\x04\x00\x00\x00\x00\x00\x00"), "", "audio/mpeg", true},
		{"mp3 frame", []byte("\xff\xfb\x90\x64\x00\x00\x00"), "", "audio/mpeg", true},
		{"aac adts", []byte("\xff\xf1\x50\x80\x02\x1f\xfc"), "", "audio/aac", true},
		{"ogg opus", []byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x13OpusHead\x01\x01"), "", "audio/ogg", true},
		{"wav", []byte("RIFF\x24\x00\x00\x00WAVEfmt "), "", "audio/wav", true},
		{"amr", []byte("#!AMR\n\x3c"), "", "audio/amr", true},
		{"mp4", []byte("\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"), "", "video/mp4", true},
		{"m4a", []byte("\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A mp42isom"), "", "audio/mp4", true},
		{"mov", []byte("\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  "), "", "video/quicktime", true},
		{"webm video", []byte("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm"), "", "video/webm", true},
		{"webm claimed audio", []byte("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm"), "audio/webm;codecs=opus", "audio/webm", true},
		{"mp4 claimed image stays video", []byte("\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"), "image/mp4", "video/mp4", true},
		{"docx", zipOf(t, "[Content_Types].xml", "<Types/>", "word/document.xml", "<w/>"), "", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", true},
		{"xlsx", zipOf(t, "[Content_Types].xml", "<Types/>", "xl/workbook.xml", "<x/>"), "", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", true},
		{"pptx", zipOf(t, "[Content_Types].xml", "<Types/>", "ppt/presentation.xml", "<p/>"), "", "application/vnd.openxmlformats-officedocument.presentationml.presentation", true},
		{"odt", zipOf(t, "mimetype", "application/vnd.oasis.opendocument.text", "content.xml", "<x/>"), "", "application/vnd.oasis.opendocument.text", true},
		{"doc", compoundFile("WordDocument", "1Table"), "", "application/msword", true},
		{"xls", compoundFile("Workbook"), "", "application/vnd.ms-excel", true},
		{"ppt", compoundFile("PowerPoint Document"), "", "application/vnd.ms-powerpoint", true},
		{"msi in an office container", compoundFile("\u4840\u3b3f\u4577"), "application/msword", "application/x-ole-storage", false},
		{"plain zip claimed docx", zipOf(t, "a.txt", "hello"), "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "application/zip", false},
		{"exe claimed jpeg", append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00"), make([]byte, 100)...), "image/jpeg", "application/octet-stream", false},
		{"elf", []byte("\x7fELF\x02\x01\x01\x00"), "image/png", "application/octet-stream", false},
		{"html", []byte("<!DOCTYPE html><html><script>alert(1)</script>"), "image/gif", "text/html", false},
		{"svg", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script/></svg>`), "image/svg+xml", "text/xml", false},
		{"text", []byte("just some words"), "image/jpeg", "text/plain", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Sniff(bytes.NewReader(tc.data), int64(len(tc.data)), tc.claimed)
			if got != tc.want {
				t.Errorf("Sniff = %q, want %q", got, tc.want)
			}
			if a := inbox.MediaAllowed(got); a != tc.allowed {
				t.Errorf("MediaAllowed(%q) = %v, want %v", got, a, tc.allowed)
			}
		})
	}
}

func TestCompoundFileBounds(t *testing.T) {
	// A header that points its directory far past the end, or claims
	// sectors of absurd size, is not an Office document and does not
	// make the reader wander.
	f := compoundFile("WordDocument")
	binary.LittleEndian.PutUint32(f[0x30:], 0x7ffffff0)
	if got := compoundFileType(bytes.NewReader(f), int64(len(f))); got != "" {
		t.Errorf("directory past the end: got %q, want \"\"", got)
	}
	f = compoundFile("WordDocument")
	binary.LittleEndian.PutUint16(f[0x1e:], 30)
	if got := compoundFileType(bytes.NewReader(f), int64(len(f))); got != "" {
		t.Errorf("bad sector shift: got %q, want \"\"", got)
	}
	// A directory chain that loops on itself ends.
	f = compoundFile("Nothing")
	binary.LittleEndian.PutUint32(f[512+4:], 1)
	if got := compoundFileType(bytes.NewReader(f), int64(len(f))); got != "" {
		t.Errorf("looping chain: got %q, want \"\"", got)
	}
}
