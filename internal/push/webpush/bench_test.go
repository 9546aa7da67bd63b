//go:build unix

package webpush_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/push"
	"github.com/onebox/onebox/internal/push/pushtest"
	"github.com/onebox/onebox/internal/push/webpush"
)

// fanOut is the number of subscriptions one notification round reaches.
const fanOut = 10000

// BenchmarkFanOut10k sends one notification to each of 10,000 distinct
// subscriptions (each its own P-256 key and auth secret, so every push is
// encrypted afresh) through the real Sender and HTTP client to the local
// fake push service, from 16 goroutines as the dispatcher's workers would.
// It reports pushes per second and the process CPU time per push, which
// includes the fake service's HTTP handling (it does not decrypt here).
//
//	go test -run '^$' -bench FanOut10k -benchtime 3x ./internal/push/webpush
func BenchmarkFanOut10k(b *testing.B) {
	svc := pushtest.NewWebPushService()
	defer svc.Close()
	svc.VerifyCrypto.Store(false)
	sender, devices := benchSetup(b, svc, svc.Host(), nil)
	n := push.Notification{
		Payload: push.Payload{TenantID: "t", ConversationID: "c", Seq: 1, Title: "María · WhatsApp",
			Body: strings.Repeat("Hola, ¿tienen esta camiseta en talla M? ", 6)},
		Topic: push.Topic("t", "c"), Urgent: true, TTL: 24 * time.Hour,
	}
	const workers = 16
	b.ResetTimer()
	cpu0, wall0 := cpuTime(), time.Now()
	for range b.N {
		jobs := make(chan inbox.PushDevice, workers)
		var wg sync.WaitGroup
		var failed sync.Map
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for d := range jobs {
					if r := sender.Send(context.Background(), d, n); r.Outcome != push.Delivered {
						failed.Store(d.ID, r)
					}
				}
			}()
		}
		for _, d := range devices {
			jobs <- d
		}
		close(jobs)
		wg.Wait()
		failed.Range(func(k, v any) bool {
			b.Fatalf("push to %v: %+v", k, v)
			return false
		})
	}
	wall, cpu := time.Since(wall0), cpuTime()-cpu0
	pushes := float64(b.N * fanOut)
	b.ReportMetric(pushes/wall.Seconds(), "pushes/s")
	b.ReportMetric(float64(cpu.Microseconds())/pushes, "cpu-µs/push")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkEncryptAndSign is the sender's own cost per push: the aes128gcm
// encryption (an ECDH and two HKDFs per push) and the VAPID JWT signature,
// with a transport that answers 201 without touching the network.
//
//	go test -run '^$' -bench EncryptAndSign ./internal/push/webpush
func BenchmarkEncryptAndSign(b *testing.B) {
	svc := pushtest.NewWebPushService()
	defer svc.Close()
	sender, devices := benchSetup(b, svc, svc.Host(), roundTrip(func(r *http.Request) (*http.Response, error) {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return &http.Response{StatusCode: http.StatusCreated, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
	}))
	n := push.Notification{Payload: push.Payload{TenantID: "t", ConversationID: "c", Seq: 1, Title: "t", Body: "b"}, TTL: time.Hour}
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range b.N {
		if r := sender.Send(context.Background(), devices[i%len(devices)], n); r.Outcome != push.Delivered {
			b.Fatalf("%+v", r)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/push")
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func benchSetup(b *testing.B, svc *pushtest.WebPushService, host string, rt http.RoundTripper) (*webpush.Sender, []inbox.PushDevice) {
	b.Helper()
	keys, err := webpush.GenerateKeys()
	if err != nil {
		b.Fatal(err)
	}
	hosts, err := inbox.ParsePushHosts(host)
	if err != nil {
		b.Fatal(err)
	}
	client := webpush.NewClient()
	if rt != nil {
		client.Transport = rt
	}
	sender, err := webpush.New(webpush.Config{Keys: keys, Subject: "mailto:bench@example.com", Hosts: hosts, Client: client})
	if err != nil {
		b.Fatal(err)
	}
	devices := make([]inbox.PushDevice, fanOut)
	for i := range devices {
		sub, err := svc.NewSubscription()
		if err != nil {
			b.Fatal(err)
		}
		devices[i] = inbox.PushDevice{ID: sub.Endpoint, Kind: inbox.PushWebPush, Endpoint: sub.Endpoint, P256dh: sub.P256dh, Auth: sub.Auth}
	}
	return sender, devices
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
