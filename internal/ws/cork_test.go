package ws

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// countingConn records each Write the socket would make.
type countingConn struct {
	net.Conn
	writes [][]byte
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

func TestCorkSendsABatchInOneWrite(t *testing.T) {
	nc := &countingConn{}
	w := &corkWriter{nc: nc, pool: newCorkPool()}
	w.Write([]byte("a"))
	if len(nc.writes) != 1 {
		t.Fatalf("uncorked write held back: %d writes", len(nc.writes))
	}
	w.cork()
	for _, f := range []string{"frame1", "frame2", "frame3"} {
		if n, err := w.Write([]byte(f)); n != len(f) || err != nil {
			t.Fatalf("corked write = %d, %v", n, err)
		}
	}
	if len(nc.writes) != 1 {
		t.Fatalf("corked writes reached the socket early: %q", nc.writes)
	}
	if err := w.uncork(time.Second); err != nil {
		t.Fatal(err)
	}
	if len(nc.writes) != 2 || string(nc.writes[1]) != "frame1frame2frame3" {
		t.Fatalf("writes = %q, want one write of the batch", nc.writes)
	}
	if err := w.uncork(time.Second); err != nil || len(nc.writes) != 2 {
		t.Fatalf("second uncork wrote again: %q %v", nc.writes, err)
	}
}
