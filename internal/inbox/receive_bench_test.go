package inbox_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
)

// BenchmarkReceive is the durable ingest path without HTTP: 64 goroutines
// store customer messages through the service into bbolt with fsync on,
// as webhooks do. It reports messages/s, the mean group-commit size and
// time, and how much of the run the single committer was busy.
func BenchmarkReceive(b *testing.B) {
	var commits, msgs atomic.Int64
	var commitNs atomic.Int64
	store, err := bolt.Open(filepath.Join(b.TempDir(), "onebox.db"), bolt.Options{OnCommit: func(d time.Duration, n int) {
		commits.Add(1)
		msgs.Add(int64(n))
		commitNs.Add(int64(d))
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	svc, _ := inbox.NewService(inbox.Config{Store: store})
	ctx := context.Background()
	tn, adm, _, _, _ := svc.CreateTenant(ctx, "Bench")
	ch, err := svc.CreateChannel(ctx, inbox.Principal{Tenant: tn, Agent: adm}, "demo", "d", nil)
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/64 + 1
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				k := n.Add(1)
				_, err := svc.Receive(ctx, ch.ID, []inbox.Inbound{{ExternalID: uuid.NewString(), ContactHandle: fmt.Sprintf("+1555%04d", k%1000), ContactName: "Customer", Text: "Hello, I would like to know where my order is, it was supposed to arrive yesterday."}})
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(msgs.Load())/float64(commits.Load()), "batch")
	b.ReportMetric(float64(commitNs.Load())/float64(commits.Load())/1e6, "ms/commit")
	b.ReportMetric(float64(commitNs.Load())/b.Elapsed().Seconds()/1e9, "busy")
	b.ReportMetric(float64(store.Speculated())/float64(n.Load()), "speculated")
}
