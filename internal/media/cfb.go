package media

import (
	"encoding/binary"
	"io"
	"unicode/utf16"
)

// compoundFileType tells the legacy Office formats (Word 97-2003 .doc,
// Excel .xls, PowerPoint .ppt) apart by the streams their Compound File
// (OLE2) container holds. The same container also carries installers
// (.msi) and other things that are not documents, so a file whose streams
// are not an Office document's gets "" and is refused.
//
// The layout is Microsoft's [MS-CFB]: a 512-byte header, a FAT of sector
// chains, and a directory of 128-byte entries reached from the header.
// Only as much is read as finding the stream names needs, within fixed
// bounds, since the input is untrusted.
func compoundFileType(r io.ReaderAt, size int64) string {
	var hdr [512]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return ""
	}
	le := binary.LittleEndian
	shift := le.Uint16(hdr[0x1e:])
	if shift != 9 && shift != 12 {
		return ""
	}
	sectorSize := int64(1) << shift
	perSector := sectorSize / 4
	// The FAT: the header lists up to 109 of its sectors, enough for
	// files of several megabytes (larger ones chain more, not read here;
	// their directory usually sits early anyway).
	var fat []uint32
	fatSectors := min(le.Uint32(hdr[0x2c:]), 109)
	buf := make([]byte, sectorSize)
	for i := uint32(0); i < fatSectors; i++ {
		sec := le.Uint32(hdr[0x4c+4*i:])
		if sec >= 0xfffffffa {
			break
		}
		if _, err := r.ReadAt(buf, (int64(sec)+1)*sectorSize); err != nil {
			return ""
		}
		for j := int64(0); j < perSector; j++ {
			fat = append(fat, le.Uint32(buf[4*j:]))
		}
	}
	var word, sheet, slides bool
	sec := le.Uint32(hdr[0x30:])
	for hops := 0; sec < 0xfffffffa && hops < 256; hops++ {
		off := (int64(sec) + 1) * sectorSize
		if off+sectorSize > size {
			break
		}
		if _, err := r.ReadAt(buf, off); err != nil {
			break
		}
		for e := int64(0); e+128 <= sectorSize; e += 128 {
			switch entryName(buf[e : e+128]) {
			case "WordDocument":
				word = true
			case "Workbook", "Book":
				sheet = true
			case "PowerPoint Document":
				slides = true
			}
		}
		if int(sec) >= len(fat) {
			break
		}
		sec = fat[sec]
	}
	switch {
	case word:
		return "application/msword"
	case sheet:
		return "application/vnd.ms-excel"
	case slides:
		return "application/vnd.ms-powerpoint"
	}
	return ""
}

// entryName decodes a directory entry's UTF-16 name.
func entryName(e []byte) string {
	n := int(binary.LittleEndian.Uint16(e[0x40:]))
	if n < 2 || n > 64 || n%2 != 0 {
		return ""
	}
	u := make([]uint16, 0, n/2-1)
	for i := 0; i+1 < n-2; i += 2 {
		u = append(u, binary.LittleEndian.Uint16(e[i:]))
	}
	return string(utf16.Decode(u))
}
