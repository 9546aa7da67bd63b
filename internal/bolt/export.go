package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	bbolt "go.etcd.io/bbolt"
)

// Exporter receives everything a store holds, as raw bytes, so another
// store can take it over unchanged (`onebox migrate`). Any field may be
// nil to skip that kind. The slices are only valid during the call.
type Exporter struct {
	// Record is one key of a collection; tenant is "" for the global ones.
	Record func(tenant, coll string, key, val []byte) error
	// Event is one entry of a tenant's log, as stored (JSON), in seq order.
	Event func(tenant string, seq uint64, data []byte) error
	// Head is a tenant's last assigned seq. It can be past the last event
	// still held (retention trims the log's start, never its end, but an
	// erased log keeps its head).
	Head func(tenant string, head uint64) error
}

// Export walks the whole store in one read transaction, so what it hands
// over is one consistent state: global collections first, then each
// tenant's collections, log and head, tenants in key order.
func (s *Store) Export(ctx context.Context, x Exporter) error {
	if s.isClosed() {
		return ErrClosed
	}
	// The walk reads the file, so first everything logged goes into it.
	if err := s.flush(ctx); err != nil {
		return fmt.Errorf("export: checkpoint: %w", err)
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db.View(func(btx *bbolt.Tx) error {
		return btx.ForEach(func(name []byte, top *bbolt.Bucket) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			switch {
			case bytes.Equal(name, bucketGlobal):
				return exportCollections(ctx, "", top, x)
			case bytes.Equal(name, bucketWAL):
				return nil // the store's own bookkeeping
			case bytes.HasPrefix(name, []byte("t/")):
				return exportTenant(ctx, strings.TrimPrefix(string(name), "t/"), top, x)
			default:
				return fmt.Errorf("export: unknown top-level bucket %q", name)
			}
		})
	})
}

func exportTenant(ctx context.Context, tenant string, top *bbolt.Bucket, x Exporter) error {
	if err := exportCollections(ctx, tenant, top, x); err != nil {
		return err
	}
	if eb := top.Bucket(bucketEvents); eb != nil && x.Event != nil {
		err := eb.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("export: tenant %q: event key of %d bytes", tenant, len(k))
			}
			return x.Event(tenant, binary.BigEndian.Uint64(k), v)
		})
		if err != nil {
			return err
		}
	}
	if mb := top.Bucket(bucketMeta); mb != nil && x.Head != nil {
		if v := mb.Get(keyHead); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("export: head of tenant %q: corrupt value (%d bytes)", tenant, len(v))
			}
			return x.Head(tenant, binary.BigEndian.Uint64(v))
		}
	}
	return nil
}

// exportCollections hands over the nested collection buckets of top,
// leaving out a tenant's log and meta, which exportTenant handles.
func exportCollections(ctx context.Context, tenant string, top *bbolt.Bucket, x Exporter) error {
	return top.ForEachBucket(func(name []byte) error {
		if tenant != "" && (bytes.Equal(name, bucketEvents) || bytes.Equal(name, bucketMeta)) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if x.Record == nil {
			return nil
		}
		coll := string(name)
		return top.Bucket(name).ForEach(func(k, v []byte) error {
			if v == nil {
				return fmt.Errorf("export: %q/%q: unexpected nested bucket %q", tenant, coll, k)
			}
			return x.Record(tenant, coll, k, v)
		})
	})
}
