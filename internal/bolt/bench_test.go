package bolt

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// BenchmarkIngest models inbound webhooks: 64 concurrent writers, each Update
// storing one ~300-byte message and appending its message.created event.
// It reports throughput and the p99 latency a caller waits for a durable
// Update (queueing + batch + fsync), plus the p99 of the commits themselves.
func BenchmarkIngest(b *testing.B) {
	const writers = 64
	tenants := []string{"t0", "t1", "t2", "t3"}
	var (
		cmu     sync.Mutex
		commitD []time.Duration
		batched int
	)
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{
		Publisher: inbox.PublisherFunc(func([]inbox.Event) {}),
		OnCommit: func(d time.Duration, n int) {
			cmu.Lock()
			commitD = append(commitD, d)
			batched += n
			cmu.Unlock()
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()

	text := strings.Repeat("lorem ipsum ", 12) // keeps the record near 300 bytes
	var next atomic.Int64
	lat := make([][]time.Duration, writers)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				tenant := tenants[i%int64(len(tenants))]
				msg := inbox.Message{
					ID:             fmt.Sprintf("msg_%012d", i),
					ConversationID: fmt.Sprintf("conv_%06d", i%500),
					Direction:      inbox.DirectionIn,
					Author:         inbox.Author{Type: "contact", ID: "ct_000123"},
					Kind:           inbox.KindText,
					Text:           text,
					Status:         inbox.MsgReceived,
					ExternalID:     fmt.Sprintf("wamid.%020d", i),
					CreatedAt:      time.Now().UTC(),
					UpdatedAt:      time.Now().UTC(),
				}
				data, err := json.Marshal(msg)
				if err != nil {
					b.Error(err)
					return
				}
				t0 := time.Now()
				err = s.Update(context.Background(), func(tx inbox.Tx) error {
					c := inbox.Collection{Tenant: tenant, Name: inbox.CollMessages}
					if err := tx.Put(c, msg.ConversationID+"/"+msg.ID, msg); err != nil {
						return err
					}
					return tx.Append(tenant, &inbox.Event{Type: inbox.EventMessageCreated, Data: data})
				})
				if err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	all := slices.Concat(lat...)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(p99(all).Seconds()*1000, "p99-ms")
	cmu.Lock()
	defer cmu.Unlock()
	b.ReportMetric(p99(commitD).Seconds()*1000, "commit-p99-ms")
	if len(commitD) > 0 {
		b.ReportMetric(float64(batched)/float64(len(commitD)), "msgs/commit")
	}
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[(len(ds)*99)/100]
}
