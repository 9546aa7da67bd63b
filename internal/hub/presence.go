package hub

import (
	"sort"
	"time"
)

// Presence across processes. Each process announces an agent's first and
// last socket (KindPresence), but a process that dies announces nothing,
// and a message lost in a reconnect is never repeated. So, with
// Options.Heartbeat set, each process also sends the full list of agents it
// holds sockets of in each tenant every Heartbeat; receivers take the list
// as the truth for that process and forget a process they have not heard
// from for PresenceExpiry. A dead process's agents go offline elsewhere
// between PresenceExpiry and PresenceExpiry+Heartbeat after its last word.

// heartbeats runs until Close, announcing this process's agents and
// expiring silent processes.
func (h *Hub) heartbeats() {
	defer h.workers.Done()
	tick := time.NewTicker(h.opts.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		h.mu.Lock()
		ts := make([]*tenant, 0, len(h.tenants))
		for _, t := range h.tenants {
			ts = append(ts, t)
		}
		h.mu.Unlock()
		now := time.Now()
		for _, t := range ts {
			h.publishHeartbeat(t, false)
			h.expire(t, now)
		}
	}
}

// publishHeartbeat sends the agents this process holds sockets of in t.
// It holds pmu so the list leaves in order with presence messages: a list
// taken before an agent's last socket closed cannot overtake the
// "offline" sent after it.
func (h *Hub) publishHeartbeat(t *tenant, ask bool) {
	h.pmu.Lock()
	defer h.pmu.Unlock()
	h.publishHeartbeatLocked(t, ask)
}

// publishHeartbeatLocked is publishHeartbeat for a caller holding pmu.
func (h *Hub) publishHeartbeatLocked(t *tenant, ask bool) {
	h.mu.Lock()
	live := !h.closed && h.tenants[t.id] == t
	h.mu.Unlock()
	if !live {
		return
	}
	t.mu.RLock()
	agents := make([]string, 0, len(t.local))
	for a := range t.local {
		agents = append(agents, a)
	}
	t.mu.RUnlock()
	sort.Strings(agents)
	m := Message{Kind: KindHeartbeat, Node: h.opts.Node, Agents: agents, Ask: ask}
	if err := h.broker.Publish(t.id, m); err != nil {
		h.log.Error("hub: publish heartbeat", "tenant", t.id, "err", err)
	}
}

// heartbeatIn applies another process's list of agents: those it no
// longer lists lose that process, those it lists gain it. Sockets see a
// presence frame for each agent whose online state changed.
func (h *Hub) heartbeatIn(t *tenant, m Message) {
	if m.Node == h.opts.Node || m.Node == "" {
		return // this process's own agents are counted as sockets come and go
	}
	want := make(map[string]struct{}, len(m.Agents))
	for _, a := range m.Agents {
		want[a] = struct{}{}
	}
	var frames [][]byte
	t.mu.Lock()
	if h.opts.Heartbeat > 0 {
		t.seen[m.Node] = time.Now()
	}
	for agent, nodes := range t.online {
		if _, ok := nodes[m.Node]; !ok {
			continue
		}
		if _, ok := want[agent]; ok {
			continue
		}
		delete(nodes, m.Node)
		if len(nodes) == 0 {
			delete(t.online, agent)
			frames = append(frames, encodePresence(agent, false))
		}
	}
	for agent := range want {
		nodes := t.online[agent]
		if nodes == nil {
			nodes = make(map[string]struct{}, 1)
			t.online[agent] = nodes
		}
		if len(nodes) == 0 {
			frames = append(frames, encodePresence(agent, true))
		}
		nodes[m.Node] = struct{}{}
	}
	t.enqueueFrames(frames)
	t.mu.Unlock()
	if m.Ask {
		// Answered with or without periodic heartbeats: the asker has
		// just (re)joined and missed our presence messages. Not from
		// here: a broker callback may not take pmu.
		go h.publishHeartbeat(t, false)
	}
}

// expire forgets the processes t has not heard from for PresenceExpiry.
func (h *Hub) expire(t *tenant, now time.Time) {
	var frames [][]byte
	t.mu.Lock()
	for node, at := range t.seen {
		if now.Sub(at) <= h.opts.PresenceExpiry {
			continue
		}
		delete(t.seen, node)
		h.log.Info("hub: forgetting a silent process's agents", "tenant", t.id, "node", node, "silent_for", now.Sub(at))
		for agent, nodes := range t.online {
			if _, ok := nodes[node]; !ok {
				continue
			}
			delete(nodes, node)
			if len(nodes) == 0 {
				delete(t.online, agent)
				frames = append(frames, encodePresence(agent, false))
			}
		}
	}
	t.enqueueFrames(frames)
	t.mu.Unlock()
}

// enqueueFrames hands ephemeral frames to every subscription. The caller
// holds t.mu.
func (t *tenant) enqueueFrames(frames [][]byte) {
	if len(frames) == 0 {
		return
	}
	for s := range t.subs {
		for _, f := range frames {
			s.enqueue(item{frame: f})
		}
	}
}
