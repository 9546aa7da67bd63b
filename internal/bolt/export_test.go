package bolt

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/onebox/onebox/internal/inbox"
)

// Export hands over every record, event and head exactly as stored, and
// nothing of the layout (a tenant's log and meta are not collections).
func TestExportWalksEverything(t *testing.T) {
	s := openTest(t, Options{})
	update(t, s, func(tx inbox.Tx) error {
		if err := tx.Put(inbox.Collection{Name: "tenants"}, "t1", map[string]string{"name": "Acme"}); err != nil {
			return err
		}
		for i := range 3 {
			if err := tx.Put(inbox.Collection{Tenant: "t1", Name: "messages"}, fmt.Sprintf("m%d", i), i); err != nil {
				return err
			}
			if err := tx.Append("t1", &inbox.Event{Type: "message.created", Data: []byte(`{}`)}); err != nil {
				return err
			}
		}
		return tx.Append("t2", &inbox.Event{Type: "agent.updated", Data: []byte(`{}`)})
	})
	var records []string
	events := map[string][]uint64{}
	heads := map[string]uint64{}
	err := s.Export(context.Background(), Exporter{
		Record: func(tenant, coll string, key, val []byte) error {
			records = append(records, fmt.Sprintf("%s/%s/%s=%s", tenant, coll, key, val))
			return nil
		},
		Event: func(tenant string, seq uint64, data []byte) error {
			events[tenant] = append(events[tenant], seq)
			return nil
		},
		Head: func(tenant string, head uint64) error {
			heads[tenant] = head
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantRecords := []string{`/tenants/t1={"name":"Acme"}`, "t1/messages/m0=0", "t1/messages/m1=1", "t1/messages/m2=2"}
	if !reflect.DeepEqual(records, wantRecords) {
		t.Errorf("records %q, want %q", records, wantRecords)
	}
	if want := map[string][]uint64{"t1": {1, 2, 3}, "t2": {1}}; !reflect.DeepEqual(events, want) {
		t.Errorf("events %v, want %v", events, want)
	}
	if want := map[string]uint64{"t1": 3, "t2": 1}; !reflect.DeepEqual(heads, want) {
		t.Errorf("heads %v, want %v", heads, want)
	}
}
