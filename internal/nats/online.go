package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"

	natsgo "github.com/nats-io/nats.go"

	"github.com/onebox/onebox/internal/hub"
)

// Who is online, for a process holding no sockets of a tenant: it is not
// subscribed to the tenant's subject, so it hears none of its presence
// messages. It asks on the tenant's question subject instead; every
// process holding sockets of the tenant answers with the list of its
// agents, in the wire form of a heartbeat. Nobody can tell how many
// processes will answer, so the asker collects answers for a fixed window.

var _ hub.OnlineAsker = (*Broker)(nil)

// onlineSubject is where questions about the tenant's online agents go.
func (b *Broker) onlineSubject(tenantID string) (string, error) {
	if !validToken(tenantID) {
		return "", fmt.Errorf("nats: tenant id %q is not a valid subject token", tenantID)
	}
	return b.prefix + ".online." + tenantID, nil
}

// AskOnline asks every process which of the tenant's agents it holds
// sockets of and returns all the agents named in the answers received
// within the answer window (Options.OnlineWindow), possibly repeated.
func (b *Broker) AskOnline(ctx context.Context, tenantID string) ([]string, error) {
	subj, err := b.onlineSubject(tenantID)
	if err != nil {
		return nil, err
	}
	if !b.nc.IsConnected() {
		return nil, errors.New("nats: not connected; cannot ask who is online")
	}
	reply := natsgo.NewInbox()
	// The server handles this subscription before the question sent after
	// it on the same connection, so no answer can come too early.
	sub, err := b.nc.SubscribeSync(reply)
	if err != nil {
		return nil, fmt.Errorf("nats: ask who is online in tenant %s: %w", tenantID, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := b.nc.PublishRequest(subj, reply, nil); err != nil {
		return nil, fmt.Errorf("nats: ask who is online in tenant %s: %w", tenantID, err)
	}
	window, cancel := context.WithTimeout(ctx, b.onlineWindow)
	defer cancel()
	var agents []string
	for {
		msg, err := sub.NextMsgWithContext(window)
		if err != nil {
			if ctx.Err() != nil {
				return agents, fmt.Errorf("nats: ask who is online in tenant %s: %w", tenantID, ctx.Err())
			}
			if window.Err() != nil {
				return agents, nil // the window is over
			}
			return agents, fmt.Errorf("nats: ask who is online in tenant %s: %w", tenantID, err)
		}
		m, err := decode(msg.Data)
		if err != nil || m.Kind != hub.KindHeartbeat {
			b.log.Warn("nats: undecodable answer about who is online; ignored", "tenant", tenantID, "err", err)
			continue
		}
		agents = append(agents, m.Agents...)
	}
}

// AnswerOnline answers other processes' questions with fn's list, when it
// is not empty, until cancel.
func (b *Broker) AnswerOnline(fn func(tenantID string) []string) (func(), error) {
	prefix := b.prefix + ".online."
	sub, err := b.nc.Subscribe(prefix+"*", func(msg *natsgo.Msg) {
		tenantID := strings.TrimPrefix(msg.Subject, prefix)
		if msg.Reply == "" || !validToken(tenantID) {
			return
		}
		agents := fn(tenantID)
		if len(agents) == 0 {
			return
		}
		data, err := encode(nil, hub.Message{Kind: hub.KindHeartbeat, Agents: agents})
		if err != nil {
			b.log.Warn("nats: encode answer about who is online", "tenant", tenantID, "err", err)
			return
		}
		if err := msg.Respond(data); err != nil {
			b.log.Warn("nats: answer who is online", "tenant", tenantID, "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("nats: answer questions about who is online: %w", err)
	}
	return func() {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) {
			b.log.Warn("nats: stop answering who is online", "err", err)
		}
	}, nil
}
