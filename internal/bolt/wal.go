package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The write-ahead log is where a group commit becomes durable: one record
// per group commit, appended to the current segment file and synced. A
// record holds the group's final writes (key, value or deletion), so
// replaying records in order onto the bbolt file rebuilds exactly the state
// the commits acknowledged. Segments are numbered in the order they are
// used; once the checkpointer has copied a segment's commits into bbolt
// (and recorded the last one there, in the same transaction), the segment
// is removed. The next segment is made ahead of time, off the committer's
// path, so switching to it costs the committer nothing.
//
// A segment starts with a header: 8 bytes of magic and the 16-byte id of
// the database it belongs to, so segments left beside a file that was
// replaced (a restore) are never replayed onto it.
//
// Record: 4-byte length and 4-byte CRC-32C of the payload, then the
// payload: 8-byte seq, entry count (uvarint), and per entry a flag byte
// (1: deletion), the key and the value, each as uvarint length + bytes.
// A torn or partly written record at the end of the last segment is the
// group commit a crash interrupted: it was never acknowledged, so replay
// stops there.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const walHeader = 8

var segMagic = []byte("OBXWAL1\x00")

const segHeader = 8 + 16

// maxRecord bounds what a replay will believe a record's length to be.
const maxRecord = 1 << 30

type wal struct {
	path string // the database's path; segments are path.wal-<n>
	f    *os.File
	n    uint64
	buf  []byte
}

func segmentName(path string, n uint64) string {
	return fmt.Sprintf("%s.wal-%016x", path, n)
}

type segment struct {
	name string
	n    uint64
}

// segments lists the log's segment files in order.
func segments(path string) ([]segment, error) {
	matches, err := filepath.Glob(path + ".wal-*")
	if err != nil {
		return nil, err
	}
	var out []segment
	for _, m := range matches {
		hex := strings.TrimPrefix(m, path+".wal-")
		n, err := strconv.ParseUint(hex, 16, 64)
		if err != nil || len(hex) != 16 {
			continue // not ours
		}
		out = append(out, segment{name: m, n: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n < out[j].n })
	return out, nil
}

// openSegment creates segment number n.
func openSegment(path string, id []byte, n uint64) (*wal, error) {
	name := segmentName(path, n)
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create log segment: %w", err)
	}
	hdr := append(append([]byte{}, segMagic...), id...)
	if _, err := f.Write(hdr); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("create log segment: %w", err)
	}
	if err := datasync(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("create log segment: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("create log segment: sync directory: %w", err)
	}
	return &wal{path: path, f: f, n: n}, nil
}

// append writes one group commit and syncs it.
func (w *wal) append(seq uint64, l layer) error {
	b := w.buf[:0]
	b = append(b, make([]byte, walHeader)...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, e := range l {
		flag := byte(0)
		if e.del {
			flag = 1
		}
		b = append(b, flag)
		b = binary.AppendUvarint(b, uint64(len(e.key)))
		b = append(b, e.key...)
		b = binary.AppendUvarint(b, uint64(len(e.val)))
		b = append(b, e.val...)
	}
	payload := b[walHeader:]
	binary.BigEndian.PutUint32(b[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[4:8], crc32.Checksum(payload, castagnoli))
	w.buf = b
	if _, err := w.f.Write(b); err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	if err := datasync(w.f); err != nil {
		return fmt.Errorf("sync log: %w", err)
	}
	return nil
}

func (w *wal) close() error { return w.f.Close() }

// errForeignSegment marks a segment of another database (or a header a
// crash cut short, which holds no record either).
var errForeignSegment = errors.New("log segment of another database")

// readSegment calls fn for every whole record of the segment, in order.
// torn reports that it stopped at a record that was cut short or damaged.
func readSegment(name string, id []byte, fn func(seq uint64, l layer) error) (torn bool, err error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return false, fmt.Errorf("read log segment: %w", err)
	}
	if len(data) < segHeader || string(data[:8]) != string(segMagic) || string(data[8:segHeader]) != string(id) {
		return false, errForeignSegment
	}
	data = data[segHeader:]
	for len(data) > 0 {
		if len(data) < walHeader {
			return true, nil
		}
		n := binary.BigEndian.Uint32(data[0:4])
		if n == 0 || n > maxRecord || int(n) > len(data)-walHeader {
			return true, nil
		}
		payload := data[walHeader : walHeader+int(n)]
		if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(data[4:8]) {
			return true, nil
		}
		seq, l, err := decodeRecord(payload)
		if err != nil {
			return false, fmt.Errorf("log segment %s: %w", filepath.Base(name), err)
		}
		if err := fn(seq, l); err != nil {
			return false, err
		}
		data = data[walHeader+int(n):]
	}
	return false, nil
}

var errBadRecord = errors.New("malformed log record")

func decodeRecord(p []byte) (uint64, layer, error) {
	if len(p) < 8 {
		return 0, nil, errBadRecord
	}
	seq := binary.BigEndian.Uint64(p)
	p = p[8:]
	count, n := binary.Uvarint(p)
	if n <= 0 || count > uint64(len(p)) {
		return 0, nil, errBadRecord
	}
	p = p[n:]
	l := make(layer, 0, count)
	field := func() ([]byte, error) {
		size, n := binary.Uvarint(p)
		if n <= 0 || size > uint64(len(p)-n) {
			return nil, errBadRecord
		}
		v := p[n : n+int(size)]
		p = p[n+int(size):]
		return v, nil
	}
	for range count {
		if len(p) < 1 {
			return 0, nil, errBadRecord
		}
		del := p[0] == 1
		p = p[1:]
		k, err := field()
		if err != nil {
			return 0, nil, err
		}
		v, err := field()
		if err != nil {
			return 0, nil, err
		}
		e := oentry{key: string(k), del: del, h: keyHash(string(k))}
		if !del {
			e.val = append([]byte{}, v...)
		}
		l = append(l, e)
	}
	if len(p) != 0 {
		return 0, nil, errBadRecord
	}
	return seq, l, nil
}
