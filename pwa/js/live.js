// The live stream: one WebSocket per app. It authenticates with a hello
// carrying the last applied seq, so the server replays exactly what was
// missed; it reconnects with exponential backoff and jitter, and reports its
// state (connecting, connected, reconnecting, offline) for the header.

const BASE_DELAY = 500;
const MAX_DELAY = 15000;

export class Live {
  // handlers: since() -> number, frame(f), state(s), revoked().
  constructor(token, handlers) {
    this.token = token;
    this.h = handlers;
    this.ws = null;
    this.retries = 0;
    this.timer = 0;
    this.stopped = false;
    this.state = "";
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => {
      this.setState("offline");
      if (this.ws) this.ws.close();
    };
    addEventListener("online", this.onOnline);
    addEventListener("offline", this.onOffline);
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    removeEventListener("online", this.onOnline);
    removeEventListener("offline", this.onOffline);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.state === "connected") {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  setState(s) {
    if (s === this.state) return;
    this.state = s;
    this.h.state(s);
  }

  reconnectNow() {
    if (this.stopped) return;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    clearTimeout(this.timer);
    this.retries = 0;
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.setState(this.retries === 0 && this.state !== "reconnecting" ? "connecting" : "reconnecting");
    const ws = new WebSocket(`${location.origin.replace(/^http/, "ws")}/api/v1/ws`);
    this.ws = ws;
    let welcomed = false;
    ws.onopen = () => ws.send(JSON.stringify({ type: "hello", token: this.token, since: this.h.since() }));
    ws.onmessage = (m) => {
      let f;
      try {
        f = JSON.parse(m.data);
      } catch {
        return;
      }
      if (f.type === "welcome") {
        welcomed = true;
        this.retries = 0;
        this.setState("connected");
      }
      this.h.frame(f);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (e.code === 4401) {
        this.stopped = true;
        this.h.revoked();
        return;
      }
      if (!navigator.onLine) {
        this.setState("offline");
        return; // the online event reconnects
      }
      // A socket that never got its welcome counts as a failed attempt.
      if (!welcomed) this.retries++;
      const delay = Math.min(MAX_DELAY, BASE_DELAY * 2 ** Math.max(0, this.retries - 1)) * (0.5 + Math.random());
      this.setState(this.retries > 2 ? "offline" : "reconnecting");
      this.timer = setTimeout(() => this.connect(), welcomed ? BASE_DELAY * Math.random() : delay);
    };
  }
}
