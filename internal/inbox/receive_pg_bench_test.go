package inbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/pgtest"
	"github.com/onebox/onebox/internal/postgres"
)

// BenchmarkReceivePostgres is BenchmarkReceive on PostgreSQL: 64 goroutines
// store customer messages through the service, each commit waiting for its
// WAL fsync. tenants spreads them over that many tenants (a webhook's
// messages all go to its channel's tenant; different tenants' writes do
// not wait for each other). It reports messages/s and how many extra runs
// serialization failures cost per message.
func BenchmarkReceivePostgres(b *testing.B) {
	for _, tenants := range []int{1, 8} {
		b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) {
			benchReceivePostgres(b, tenants)
		})
	}
}

func benchReceivePostgres(b *testing.B, tenants int) {
	store, err := postgres.Open(context.Background(), pgtest.Durable(pgtest.DSN(b)), postgres.Options{MaxConns: 32, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	svc, _ := inbox.NewService(inbox.Config{Store: store})
	ctx := context.Background()
	channels := make([]string, tenants)
	for i := range channels {
		tn, adm, _, _, err := svc.CreateTenant(ctx, fmt.Sprintf("Bench %d", i))
		if err != nil {
			b.Fatal(err)
		}
		ch, err := svc.CreateChannel(ctx, inbox.Principal{Tenant: tn, Agent: adm}, "demo", "d", nil)
		if err != nil {
			b.Fatal(err)
		}
		channels[i] = ch.ID
	}
	before := store.Stats()
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
				_, err := svc.Receive(ctx, channels[int(k)%tenants], []inbox.Inbound{{ExternalID: uuid.NewString(), ContactHandle: fmt.Sprintf("+1555%04d", k%1000), ContactName: "Customer", Text: "Hello, I would like to know where my order is, it was supposed to arrive yesterday."}})
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	after := store.Stats()
	b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(after.Retries-before.Retries)/float64(n.Load()), "retries/msg")
}
