package nats

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/onebox/onebox/internal/hub"
)

// The wire form of a hub.Message: one version byte, one kind byte, then
// the kind's fields as unsigned varints and length-prefixed byte strings.
// Event frames travel as the hub encoded them, so a receiver hands the
// very bytes to its sockets without decoding JSON.
const wireVersion = 1

// Wire kinds. They are the protocol between processes, so they are fixed
// here rather than borrowed from hub.Kind's numbering.
const (
	wireEvents     = 'E'
	wireTyping     = 'T'
	wirePresence   = 'P'
	wireDisconnect = 'D'
	wireHeartbeat  = 'H'
	// wireCatchUp tells receivers to catch up from the store: the sender
	// could not carry an event (larger than the server's payload limit).
	wireCatchUp = 'C'
)

var errShort = errors.New("message truncated")

// encode appends the wire form of m to dst.
func encode(dst []byte, m hub.Message) ([]byte, error) {
	dst = append(dst, wireVersion)
	switch m.Kind {
	case hub.KindEvents:
		dst = append(dst, wireEvents)
		dst = binary.AppendUvarint(dst, uint64(len(m.Events)))
		for _, f := range m.Events {
			dst = binary.AppendUvarint(dst, f.Seq)
			dst = appendBytes(dst, f.Data)
		}
	case hub.KindTyping:
		dst = append(dst, wireTyping)
		dst = appendBytes(dst, []byte(m.AgentID))
		dst = appendBytes(dst, m.Frame)
	case hub.KindPresence:
		dst = append(dst, wirePresence)
		dst = appendBytes(dst, []byte(m.AgentID))
		dst = appendBytes(dst, []byte(m.Node))
		dst = appendBool(dst, m.Online)
		dst = appendBytes(dst, m.Frame)
	case hub.KindDisconnect:
		dst = append(dst, wireDisconnect)
		dst = appendBytes(dst, []byte(m.Match.KeyID))
		dst = appendBytes(dst, []byte(m.Match.SessionHash))
		dst = appendBytes(dst, []byte(m.Match.AgentID))
	case hub.KindHeartbeat:
		dst = append(dst, wireHeartbeat)
		dst = appendBytes(dst, []byte(m.Node))
		dst = appendBool(dst, m.Ask)
		dst = binary.AppendUvarint(dst, uint64(len(m.Agents)))
		for _, a := range m.Agents {
			dst = appendBytes(dst, []byte(a))
		}
	case hub.KindResync:
		dst = append(dst, wireCatchUp)
	default:
		return nil, fmt.Errorf("nats: cannot encode message kind %d", m.Kind)
	}
	return dst, nil
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// decoder reads the wire form; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	if n > 1 && d.b[n-1] == 0 {
		// An overlong form (a value padded with zero groups) is not
		// what encode writes; one message must have one wire form.
		d.err = errors.New("overlong varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next byte string. It shares the message's buffer,
// which the broker hands over for good (nats.go does not reuse it).
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 {
		d.err = errShort
		return false
	}
	v := d.b[0]
	d.b = d.b[1:]
	if v > 1 {
		d.err = fmt.Errorf("bad boolean %d", v)
	}
	return v == 1
}

// count reads a list length, refusing one the rest of the message could
// not hold (each element takes at least min bytes), so a forged length
// cannot make us allocate.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/min) {
		d.err = errShort
		return 0
	}
	return int(n)
}

// decode parses a message published by encode.
func decode(b []byte) (hub.Message, error) {
	if len(b) < 2 {
		return hub.Message{}, errShort
	}
	if b[0] != wireVersion {
		return hub.Message{}, fmt.Errorf("unknown wire version %d", b[0])
	}
	d := &decoder{b: b[2:]}
	var m hub.Message
	switch b[1] {
	case wireEvents:
		m.Kind = hub.KindEvents
		n := d.count(2)
		m.Events = make([]hub.Frame, 0, n)
		var last uint64
		for range n {
			f := hub.Frame{Seq: d.uvarint(), Data: d.bytes()}
			if d.err == nil && f.Seq <= last {
				d.err = fmt.Errorf("event seq %d after %d", f.Seq, last)
			}
			last = f.Seq
			m.Events = append(m.Events, f)
		}
	case wireTyping:
		m.Kind = hub.KindTyping
		m.AgentID = d.str()
		m.Frame = d.bytes()
	case wirePresence:
		m.Kind = hub.KindPresence
		m.AgentID = d.str()
		m.Node = d.str()
		m.Online = d.bool()
		m.Frame = d.bytes()
	case wireDisconnect:
		m.Kind = hub.KindDisconnect
		m.Match.KeyID = d.str()
		m.Match.SessionHash = d.str()
		m.Match.AgentID = d.str()
	case wireHeartbeat:
		m.Kind = hub.KindHeartbeat
		m.Node = d.str()
		m.Ask = d.bool()
		n := d.count(1)
		m.Agents = make([]string, 0, n)
		for range n {
			m.Agents = append(m.Agents, d.str())
		}
	case wireCatchUp:
		m.Kind = hub.KindResync
	default:
		return hub.Message{}, fmt.Errorf("unknown message kind %q", b[1])
	}
	if d.err != nil {
		return hub.Message{}, d.err
	}
	if len(d.b) != 0 {
		return hub.Message{}, fmt.Errorf("%d bytes after the message", len(d.b))
	}
	return m, nil
}
