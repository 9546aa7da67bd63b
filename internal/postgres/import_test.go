package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/pgtest"
)

func records(rows ...[4]string) func(func(tenant, coll string, key, val []byte) error) error {
	return func(emit func(tenant, coll string, key, val []byte) error) error {
		for _, r := range rows {
			if err := emit(r[0], r[1], []byte(r[2]), []byte(r[3])); err != nil {
				return err
			}
		}
		return nil
	}
}

// Imported rows read back through the store as written, the log goes on
// from the imported head, and a database with data is refused untouched.
func TestImportIntoEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	s := openDSN(t, pgtest.DSN(t), nil)
	sum, err := s.Import(ctx, ImportSource{
		Records: records([4]string{"", "tenants", "t1", `{"name":"Acme"}`}, [4]string{"t1", "messages", "m1", `"hello"`}),
		Events: func(emit func(string, uint64, []byte) error) error {
			// A log trimmed at its start: seqs 3..4 of head 5.
			for _, seq := range []uint64{3, 4} {
				if err := emit("t1", seq, []byte(`{"seq":0,"type":"message.created","at":"2026-01-01T00:00:00Z","data":{}}`)); err != nil {
					return err
				}
			}
			return nil
		},
		Heads: func(emit func(string, uint64) error) error { return emit("t1", 5) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != 2 || sum.Events != 2 || sum.Logs["t1"] != (LogSummary{Head: 5, Events: 2}) {
		t.Fatalf("summary %+v", sum)
	}
	var msg string
	if err := s.View(ctx, func(tx inbox.Tx) error { return tx.Get(inbox.Collection{Tenant: "t1", Name: "messages"}, "m1", &msg) }); err != nil || msg != "hello" {
		t.Fatalf("record: %q %v", msg, err)
	}
	if oldest, err := s.Oldest(ctx, "t1"); err != nil || oldest != 3 {
		t.Fatalf("oldest %d %v, want 3", oldest, err)
	}
	if err := s.Update(ctx, func(tx inbox.Tx) error { return tx.Append("t1", &inbox.Event{Type: "x", Data: []byte(`{}`)}) }); err != nil {
		t.Fatal(err)
	}
	evs, head, err := s.Events(ctx, "t1", 4, 10)
	if err != nil || head != 6 || len(evs) != 1 || evs[0].Seq != 6 {
		t.Fatalf("after import: %v head %d %v", evs, head, err)
	}

	if _, err := s.Import(ctx, ImportSource{Records: records([4]string{"", "tenants", "t2", `{}`})}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("second import: %v, want ErrNotEmpty", err)
	}
	if after, err := s.Summarize(ctx); err != nil || after.Records != 2 {
		t.Fatalf("after the refused import: %+v %v", after, err)
	}
}

// A log that runs past its head would hand out seqs twice: refused, and
// nothing is kept.
func TestImportRefusesEventsPastHead(t *testing.T) {
	ctx := context.Background()
	s := openDSN(t, pgtest.DSN(t), nil)
	_, err := s.Import(ctx, ImportSource{
		Records: records([4]string{"", "tenants", "t1", `{}`}),
		Events:  func(emit func(string, uint64, []byte) error) error { return emit("t1", 7, []byte(`{}`)) },
		Heads:   func(emit func(string, uint64) error) error { return emit("t1", 5) },
	})
	if err == nil || !strings.Contains(err.Error(), "past its head") {
		t.Fatalf("got %v, want a refusal", err)
	}
	if sum, err := s.Summarize(ctx); err != nil || sum.Records != 0 || sum.Events != 0 {
		t.Fatalf("kept %+v %v", sum, err)
	}
}
