package media

import (
	"archive/zip"
	"bytes"
	"io"
	"mime"
	"net/http"
	"strings"
)

// sniffLen is how much of a file's start sniffing looks at.
const sniffLen = 4096

// Sniff names a file's type from its content. The name and the type a
// client or a provider claimed are never trusted: an executable called
// photo.jpg is still an executable. claimed only settles what the content
// cannot, an audio-only recording in a container that also holds video
// (a browser's audio/webm, an .m4a).
func Sniff(r io.ReaderAt, size int64, claimed string) string {
	head := make([]byte, min(size, sniffLen))
	n, _ := r.ReadAt(head, 0)
	head = head[:n]
	t := sniffContent(head, r, size)
	if strings.HasPrefix(t, "video/") {
		if c, _, err := mime.ParseMediaType(claimed); err == nil && c == "audio/"+strings.TrimPrefix(t, "video/") {
			return c
		}
	}
	return t
}

func sniffContent(head []byte, r io.ReaderAt, size int64) string {
	has := func(off int, sig string) bool {
		return len(head) >= off+len(sig) && string(head[off:off+len(sig)]) == sig
	}
	switch {
	case has(0, "%PDF-"):
		return "application/pdf"
	case has(0, `{\rtf`):
		return "application/rtf"
	case has(4, "ftyp"):
		return isoMediaType(head)
	case has(0, "OggS"):
		return oggType(head)
	case has(0, "fLaC"):
		return "audio/flac"
	case has(0, "#!AMR"):
		return "audio/amr"
	case has(0, "ID3"):
		return "audio/mpeg"
	case has(0, "RIFF") && has(8, "WAVE"):
		return "audio/wav"
	case has(0, "RIFF") && has(8, "AVI "):
		return "video/x-msvideo"
	case has(0, "RIFF") && has(8, "WEBP"):
		return "image/webp"
	case has(0, "\x1a\x45\xdf\xa3"):
		if bytes.Contains(head, []byte("webm")) {
			return "video/webm"
		}
		return "video/x-matroska"
	case has(0, "II*\x00"), has(0, "MM\x00*"):
		return "image/tiff"
	case has(0, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
		if t := compoundFileType(r, size); t != "" {
			return t
		}
		return "application/x-ole-storage"
	case has(0, "PK\x03\x04"):
		return zipType(r, size)
	case len(head) >= 2 && head[0] == 0xff && head[1]&0xf6 == 0xf0:
		return "audio/aac" // ADTS frame header
	case len(head) >= 2 && head[0] == 0xff && head[1]&0xe0 == 0xe0 && head[1]&0x06 != 0:
		return "audio/mpeg" // MPEG audio frame header without an ID3 tag
	}
	t := http.DetectContentType(head)
	if base, _, err := mime.ParseMediaType(t); err == nil {
		t = base
	}
	switch t {
	case "audio/wave":
		return "audio/wav"
	case "video/avi":
		return "video/x-msvideo"
	case "application/ogg":
		return oggType(head)
	}
	return t
}

// isoMediaType reads the brands of an ISO base media file (MP4 and its
// relatives: QuickTime, 3GPP, M4A, HEIC, AVIF).
func isoMediaType(head []byte) string {
	if len(head) < 12 {
		return "application/octet-stream"
	}
	brands := []string{string(head[8:12])}
	boxLen := int(head[0])<<24 | int(head[1])<<16 | int(head[2])<<8 | int(head[3])
	for off := 16; off+4 <= boxLen && off+4 <= len(head); off += 4 {
		brands = append(brands, string(head[off:off+4]))
	}
	for _, b := range brands {
		switch b {
		case "avif", "avis":
			return "image/avif"
		case "heic", "heix", "heim", "heis":
			return "image/heic"
		}
	}
	switch major := brands[0]; {
	case major == "mif1" || major == "msf1":
		return "image/heif"
	case major == "M4A " || major == "M4B ":
		return "audio/mp4"
	case major == "qt  ":
		return "video/quicktime"
	case strings.HasPrefix(major, "3g2"):
		return "video/3gpp2"
	case strings.HasPrefix(major, "3gp"):
		return "video/3gpp"
	}
	return "video/mp4"
}

// oggType tells audio from video in an Ogg stream by its first codec
// header, which sits in the first page.
func oggType(head []byte) string {
	switch {
	case bytes.Contains(head, []byte("\x80theora")):
		return "video/ogg"
	case bytes.Contains(head, []byte("OpusHead")), bytes.Contains(head, []byte("\x01vorbis")),
		bytes.Contains(head, []byte("Speex   ")), bytes.Contains(head, []byte("\x7fFLAC")):
		return "audio/ogg"
	}
	return "application/ogg"
}

// zipType recognises the office formats that are ZIP archives
// (OpenDocument, Office Open XML); any other archive stays a ZIP, which is
// not accepted.
func zipType(r io.ReaderAt, size int64) string {
	const plain = "application/zip"
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return plain
	}
	if len(zr.File) > 0 && zr.File[0].Name == "mimetype" && zr.File[0].UncompressedSize64 < 128 {
		if rc, err := zr.File[0].Open(); err == nil {
			b, _ := io.ReadAll(io.LimitReader(rc, 128))
			rc.Close()
			switch t := strings.TrimSpace(string(b)); t {
			case "application/vnd.oasis.opendocument.text",
				"application/vnd.oasis.opendocument.spreadsheet",
				"application/vnd.oasis.opendocument.presentation":
				return t
			}
		}
	}
	types := false
	var word, sheet, slides bool
	for _, f := range zr.File {
		switch {
		case f.Name == "[Content_Types].xml":
			types = true
		case strings.HasPrefix(f.Name, "word/"):
			word = true
		case strings.HasPrefix(f.Name, "xl/"):
			sheet = true
		case strings.HasPrefix(f.Name, "ppt/"):
			slides = true
		}
	}
	switch {
	case !types:
		return plain
	case word:
		return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	case sheet:
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	case slides:
		return "application/vnd.openxmlformats-officedocument.presentationml.presentation"
	}
	return plain
}
