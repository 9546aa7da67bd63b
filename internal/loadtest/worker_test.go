package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// fakeStream speaks the hello/welcome/event protocol, enough to drive a
// worker: it welcomes every valid hello and sends events on demand.
type fakeStream struct {
	mu    sync.Mutex
	conns []*websocket.Conn
	ready chan struct{} // one value per welcomed socket
}

func (f *fakeStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ctx := r.Context()
	_, data, err := c.Read(ctx)
	if err != nil {
		return
	}
	var hello struct{ Type, Token string }
	if json.Unmarshal(data, &hello) != nil || hello.Type != "hello" || !strings.HasPrefix(hello.Token, "ok") {
		c.Close(4401, "unauthorized")
		return
	}
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"welcome","head":5,"agent":{}}`))
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
	f.ready <- struct{}{}
	<-c.CloseRead(context.Background()).Done()
}

func (f *fakeStream) send(t *testing.T, seq uint64, text string) {
	t.Helper()
	frame := fmt.Sprintf(`{"type":"event","event":{"seq":%d,"type":"message.created","at":%q,"data":{"text":%q}}}`,
		seq, time.Now().UTC().Format(time.RFC3339Nano), text)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		if err := c.Write(context.Background(), websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWorkerProtocol(t *testing.T) {
	fs := &fakeStream{ready: make(chan struct{}, 16)}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- RunWorker(ctx, inR, outW, 20*time.Second); outW.Close() }()
	replies := bufio.NewScanner(outR)
	call := func(cmd workerCmd) workerReply {
		t.Helper()
		b, _ := json.Marshal(cmd)
		if _, err := inW.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
		if !replies.Scan() {
			t.Fatalf("no reply to %s: %v", cmd.Op, replies.Err())
		}
		var r workerReply
		if err := json.Unmarshal(replies.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}

	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	r := call(workerCmd{Op: "connect", URL: url, Source: "127.0.0.1", Parallel: 2,
		Sockets: []socketSpec{{Token: "ok1", Since: 5}, {Token: "ok2", Since: 5}, {Token: "bad", Since: 5}}})
	if r.Stats == nil || r.Stats.Open != 2 || r.Stats.ConnectFailed != 1 || r.Stats.FirstError == "" {
		t.Fatalf("connect stats = %+v; want 2 open, 1 failed with its error", r.Stats)
	}
	for range 2 {
		<-fs.ready
	}

	sent := time.Now()
	fs.send(t, 6, stampText(sent, "one"))
	fs.send(t, 7, "not stamped")
	fs.send(t, 9, stampText(sent, "after a gap"))
	var st *workerStats
	for deadline := time.Now().Add(10 * time.Second); ; {
		st = call(workerCmd{Op: "stats", Hist: true}).Stats
		if st.Events >= 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a counter in another goroutine
	}
	if st.Events != 6 || st.Stamped != 4 || st.Gaps != 2 || st.Dups != 0 {
		t.Errorf("events, stamped, gaps, dups = %d, %d, %d, %d; want 6, 4, 2, 0", st.Events, st.Stamped, st.Gaps, st.Dups)
	}
	if st.At == nil || st.At.N != 6 || st.Send == nil || st.Send.N != 4 {
		t.Errorf("histograms = %+v, %+v; want 6 and 4 samples", st.At, st.Send)
	}
	if st.MinAtNS == 0 || st.MaxArrivalNS < st.MinAtNS {
		t.Errorf("min at %d, max arrival %d", st.MinAtNS, st.MaxArrivalNS)
	}

	call(workerCmd{Op: "reset"})
	if st := call(workerCmd{Op: "stats"}).Stats; st.Events != 0 || st.Open != 2 {
		t.Errorf("after reset: events %d, open %d; want 0, 2", st.Events, st.Open)
	}
	if r := call(workerCmd{Op: "close"}); r.Stats == nil || r.Stats.Open != 0 {
		t.Errorf("after close: %+v; want 0 open", r.Stats)
	}
	if err := <-done; err != nil {
		t.Errorf("RunWorker: %v", err)
	}
}
