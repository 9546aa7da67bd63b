// The agent app: sign-in, the inbox, conversations, the composer, the live
// stream and the offline outbox. State lives in memory for rendering and in
// IndexedDB for offline use; the server's event log (by seq) keeps both in
// step with everyone else's changes.

import { Api, ApiError, query } from "./api.js";
import { TenantDB, loadSession, saveSession, clearSession } from "./db.js";
import { Live } from "./live.js";
import * as f from "./format.js";
import * as push from "./push.js";
import { renderAdmin } from "./admin.js";

const $ = (id) => document.getElementById(id);
const PAGE = 100;
const TYPING_TTL = 5000;

const S = {
  session: null,
  api: null,
  db: null,
  live: null,
  me: null,
  agents: new Map(),
  convs: new Map(),
  msgs: new Map(), // conversation id -> Map(message id -> message)
  older: new Map(), // conversation id -> true when earlier messages may exist
  outbox: new Map(), // client_id -> pending message
  lastSeq: 0,
  filter: { assignee: "all", status: "open", label: "", q: "" },
  qMatches: null,
  nextCursor: null,
  openId: null,
  selectedId: null,
  typing: new Map(), // conversation id -> Map(agent id -> expiry)
  erased: new Set(), // conversation ids erased at a customer's request
  conn: "connecting",
  features: { media: false, catalog: false },
  pending: null,
  flushing: false,
  flushAgain: false,
};

// ---------- boot ----------

async function boot() {
  performance.mark("app-start");
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch((e) => console.warn("service worker", e));
    navigator.serviceWorker.addEventListener("message", (e) => {
      if (e.data && e.data.type === "open-conversation" && S.session) navigate(`/c/${encodeURIComponent(e.data.conversation_id)}`);
    });
  }
  wireStatic();
  // The tenant's cache is opened and read while the session loads: reading
  // a large inbox is most of the time to first paint.
  const hint = localStorage.getItem("onebox-tenant");
  const early = hint ? TenantDB.open(hint).then(async (db) => ({ db, convs: await db.conversations() })).catch(() => null) : null;
  const session = await loadSession().catch(() => null);
  if (!session || !session.token) {
    if (early) early.then((x) => x && x.db.close());
    return showSignIn();
  }
  let pre = early && (await early);
  if (pre && pre.db.tenantId !== session.tenant.id) {
    pre.db.close();
    pre = null;
  }
  await startApp(session, false, pre);
}

function showSignIn(notice) {
  $("main").hidden = true;
  $("signin").hidden = false;
  const n = $("signin-notice");
  n.hidden = !notice;
  n.textContent = notice || "";
  if (location.pathname !== "/") history.replaceState({}, "", "/");
  document.title = "Sign in · OneBox";
  $("access-key").focus();
}

async function signIn(ev) {
  ev.preventDefault();
  const key = $("access-key").value.trim();
  const err = $("signin-error");
  err.textContent = "";
  if (!key) {
    err.textContent = "Enter your access key.";
    return;
  }
  const btn = ev.submitter || ev.target.querySelector("button[type=submit]");
  btn.disabled = true;
  try {
    const api = new Api(null);
    const platform = (navigator.userAgentData && navigator.userAgentData.platform) || navigator.platform || "web";
    const r = await api.post("/session", { access_key: key, device: { name: `${browserName()} on ${platform}`, platform: "web" } });
    const session = { token: r.token, expires_at: r.expires_at, agent: r.agent, tenant: r.tenant };
    await saveSession(session);
    $("access-key").value = "";
    await startApp(session, true);
  } catch (e) {
    err.textContent = e.status === 401 ? "This access key is not valid. Check it, or ask your administrator for a new one." : e.message;
  } finally {
    btn.disabled = false;
  }
}

function browserName() {
  const ua = navigator.userAgent;
  if (/Edg\//.test(ua)) return "Edge";
  if (/Firefox\//.test(ua)) return "Firefox";
  if (/Chrom(e|ium)\//.test(ua)) return "Chrome";
  if (/Safari\//.test(ua)) return "Safari";
  return "Browser";
}

async function startApp(session, fresh = false, pre = null) {
  S.session = session;
  S.me = session.agent;
  S.api = new Api(session.token, () => endSession(true));
  S.db = pre ? pre.db : await TenantDB.open(session.tenant.id);
  localStorage.setItem("onebox-tenant", session.tenant.id);
  S.pending = newPending();
  const [convs, outbox, lastSeq, agents, features] = await Promise.all([
    pre ? pre.convs : S.db.conversations(),
    S.db.outbox(),
    S.db.meta("lastSeq"),
    S.db.meta("agents"),
    S.db.meta("features"),
  ]);
  performance.mark("cache-loaded");
  S.convs = new Map(convs.map((c) => [c.id, c]));
  S.outbox = new Map(outbox.map((o) => [o.client_id, o]));
  S.lastSeq = lastSeq || 0;
  S.agents = new Map((agents || [session.agent]).map((a) => [a.id, a]));
  if (features) S.features = features;

  $("signin").hidden = true;
  $("main").hidden = false;
  $("me-button").innerHTML = f.avatar(S.me.name, "sm");
  $("me-name").textContent = `${S.me.name} · ${session.tenant.name}`;
  $("nav-admin").hidden = S.me.role !== "admin";
  applyFeatures();
  renderLabelsFilter();
  renderPresence();
  renderList();
  performance.mark("inbox-rendered");
  route();

  S.live = new Live(session.token, {
    since: () => S.lastSeq,
    frame: onFrame,
    state: setConn,
    revoked: () => endSession(true),
  });
  sync();
  flushOutbox();
  if (fresh) setTimeout(offerPush, 800);
  else offerPush();
}

// sync brings the cache up to date, then opens the live stream. A fresh
// cache takes the log's head first and then the lists, so no change made in
// between is lost (the stream replays it, and applying twice is harmless).
async function sync() {
  try {
    if (S.lastSeq === 0) {
      const head = await S.api.get("/events?since=0&limit=1");
      await fetchList(true);
      S.lastSeq = head.head || 0;
      S.pending.meta = true;
      scheduleWrite();
    } else {
      fetchList(false).catch(() => {});
    }
    refreshAgents().catch(() => {});
    detectFeatures().catch(() => {});
    S.live.start();
  } catch (e) {
    if (!S.session) return;
    setConn(navigator.onLine ? "reconnecting" : "offline");
    const retry = () => {
      removeEventListener("online", retry);
      clearTimeout(t);
      if (S.session && S.live && !S.live.ws) sync();
    };
    const t = setTimeout(retry, 3000 + Math.random() * 2000);
    addEventListener("online", retry);
  }
}

async function endSession(revoked) {
  if (!S.session) return;
  const session = S.session;
  const api = S.api;
  S.session = null;
  if (S.live) S.live.stop();
  if (!revoked) {
    await push.unsubscribe(api).catch(() => {});
    await api.del("/session").catch(() => {});
  }
  if (S.db) S.db.close();
  await clearSession().catch(() => {});
  localStorage.removeItem("onebox-tenant");
  await TenantDB.destroy(session.tenant.id);
  Object.assign(S, { api: null, db: null, live: null, me: null, convs: new Map(), msgs: new Map(), outbox: new Map(), erased: new Set(), lastSeq: 0, openId: null, selectedId: null, qMatches: null });
  $("conv-list").textContent = "";
  $("msg-list").textContent = "";
  $("thread-body").hidden = true;
  $("admin").textContent = "";
  showSignIn(revoked ? "Your session has ended. Sign in again to continue." : "You are signed out.");
}

// ---------- server data ----------

async function refreshAgents() {
  const r = await S.api.get("/agents");
  S.agents = new Map(r.agents.map((a) => [a.id, a]));
  const me = S.agents.get(S.me.id);
  if (me) S.me = { ...S.me, ...me };
  S.pending.agents = true;
  scheduleWrite();
  renderPresence();
  scheduleRender();
}

async function detectFeatures() {
  const probe = async (fn) => {
    try {
      await fn();
      return true;
    } catch (e) {
      return e.status !== 404 && e.status !== 0 && e.status !== 501 && e.status !== 503;
    }
  };
  // GET on the upload route answers 405 when uploads exist, 404 when not.
  const [catalog, media] = await Promise.all([
    probe(() => S.api.get("/catalog/products?limit=1")),
    S.api.get("/media").then(() => true, (e) => e.status === 405),
  ]);
  S.features = { catalog, media };
  S.pending.features = true;
  scheduleWrite();
  applyFeatures();
}

function applyFeatures() {
  $("attach").hidden = !S.features.media;
  $("product").hidden = !S.features.catalog;
}

function listParams(cursor) {
  const fl = S.filter;
  return query({ status: fl.status, assignee: fl.assignee === "all" ? "" : fl.assignee, label: fl.label, q: fl.q, limit: PAGE, cursor });
}

// fetchList loads the first page of the current filter into the cache.
// replace drops cached conversations the server no longer lists (after a
// reset, or on a fresh start).
async function fetchList(replace) {
  const fl = JSON.stringify(S.filter);
  const r = await S.api.get(`/conversations${listParams()}`);
  if (JSON.stringify(S.filter) !== fl) return;
  if (replace) {
    const all = await S.api.get(`/conversations${query({ limit: 200 })}`).catch(() => null);
    const keep = new Set([...r.conversations, ...(all ? all.conversations : [])].map((c) => c.id));
    for (const id of S.convs.keys()) {
      if (!keep.has(id)) {
        S.convs.delete(id);
        S.msgs.delete(id);
        S.pending.deleteConversations.add(id);
      }
    }
    if (all) for (const c of all.conversations) putConv(c);
  }
  for (const c of r.conversations) putConv(c);
  S.nextCursor = r.next_cursor;
  S.qMatches = S.filter.q ? new Set(r.conversations.map((c) => c.id)) : null;
  scheduleWrite();
  scheduleRender();
}

async function loadMore() {
  if (!S.nextCursor) return;
  const btn = $("load-more");
  btn.disabled = true;
  try {
    const r = await S.api.get(`/conversations${listParams(S.nextCursor)}`);
    for (const c of r.conversations) putConv(c);
    if (S.qMatches) for (const c of r.conversations) S.qMatches.add(c.id);
    S.nextCursor = r.next_cursor;
    scheduleWrite();
    scheduleRender();
  } catch (e) {
    toast(e.message);
  } finally {
    btn.disabled = false;
  }
}

// ---------- live frames and events ----------

function onFrame(fr) {
  switch (fr.type) {
    case "welcome":
      if (fr.agent) S.me = { ...S.me, ...fr.agent };
      flushOutbox();
      break;
    case "event":
      applyEvent(fr.event);
      break;
    case "reset":
      S.lastSeq = fr.head;
      S.pending.meta = true;
      S.msgs.clear();
      fetchList(true).catch(() => {});
      if (S.openId) loadMessages(S.openId);
      break;
    case "typing":
      if (fr.agent_id === S.me.id) break;
      if (!S.typing.has(fr.conversation_id)) S.typing.set(fr.conversation_id, new Map());
      S.typing.get(fr.conversation_id).set(fr.agent_id, Date.now() + TYPING_TTL);
      renderTyping();
      setTimeout(renderTyping, TYPING_TTL + 50);
      break;
    case "presence": {
      const a = S.agents.get(fr.agent_id);
      if (a) a.online = fr.online;
      renderPresence();
      break;
    }
  }
}

function applyEvent(ev) {
  if (!ev || ev.seq <= S.lastSeq) return;
  S.lastSeq = ev.seq;
  S.pending.meta = true;
  const d = ev.data;
  switch (ev.type) {
    case "conversation.created":
    case "conversation.updated":
      putConv(d);
      break;
    case "message.created":
    case "message.updated":
      putMsg(d);
      if (ev.type === "message.created" && d.direction === "in" && d.conversation_id === S.openId && document.visibilityState === "visible") markReadSoon(d.conversation_id);
      break;
    case "agent.updated":
      S.agents.set(d.id, { ...S.agents.get(d.id), ...d });
      if (d.id === S.me.id) S.me = { ...S.me, ...d };
      S.pending.agents = true;
      renderPresence();
      break;
    case "contact.erased":
      dropConversations(erasedConversations(d));
      break;
    case "tombstone":
      // Content erased or purged on the server: nothing to apply.
      break;
  }
  scheduleWrite();
  scheduleRender();
}

// erasedConversations lists the conversations a contact.erased event
// names, with any cached conversation of that contact.
function erasedConversations(d) {
  const ids = new Set(d && Array.isArray(d.conversation_ids) ? d.conversation_ids : []);
  const contact = d && d.contact_id;
  if (contact) for (const c of S.convs.values()) if (c.contact && c.contact.id === contact) ids.add(c.id);
  return ids;
}

// dropConversations removes erased conversations, their messages, drafts
// and queued sends from memory and from the cache, and leaves an erased
// conversation that is open with a notice. Later copies (an HTTP answer
// already under way) are refused.
function dropConversations(ids) {
  if (!ids.size) return;
  for (const id of ids) {
    S.erased.add(id);
    S.convs.delete(id);
    S.msgs.delete(id);
    S.older.delete(id);
    S.typing.delete(id);
    drafts.delete(id);
    if (S.qMatches) S.qMatches.delete(id);
    S.pending.conversations.delete(id);
    S.pending.deleteConversations.add(id);
  }
  for (const [mid, m] of S.pending.messages) if (ids.has(m.conversation_id)) S.pending.messages.delete(mid);
  for (const [cid, o] of S.outbox) {
    if (ids.has(o.conversation_id)) {
      S.outbox.delete(cid);
      S.pending.outboxPut.delete(cid);
      S.pending.outboxDelete.add(cid);
    }
  }
  if (S.selectedId && ids.has(S.selectedId)) S.selectedId = null;
  if (S.openId && ids.has(S.openId)) {
    $("msg-list").textContent = "";
    $("text").value = "";
    navigate("/", true);
    toast("This conversation was deleted at the customer's request.");
  }
}

// stamp makes an RFC 3339 UTC time comparable as a string: the server
// drops trailing zeros of the fraction, so "…:38.19Z" would sort after
// "…:38.190346994Z".
function stamp(s) {
  return (s || "").replace(/(?:\.(\d+))?Z$/, (_, fr = "") => `.${(fr + "000000000").slice(0, 9)}Z`);
}

function putConv(c) {
  if (S.erased.has(c.id)) return;
  const old = S.convs.get(c.id);
  // Events can overtake an HTTP answer; keep the newer copy.
  if (old && old.updated_at && c.updated_at && stamp(old.updated_at) > stamp(c.updated_at)) return;
  if (c.id === S.openId && document.visibilityState === "visible" && c.unread_count > 0 && (!old || old.unread_count === 0)) markReadSoon(c.id);
  S.convs.set(c.id, c);
  S.pending.conversations.set(c.id, c);
  if (c.last_message) putMsg(c.last_message);
}

function putMsg(m) {
  if (S.erased.has(m.conversation_id)) return;
  const map = S.msgs.get(m.conversation_id);
  const old = map && map.get(m.id);
  // An event (failed, delivered) can overtake the answer to the send that
  // created the message; an older copy never replaces a newer one.
  if (!old || stamp(old.updated_at) <= stamp(m.updated_at)) {
    if (map) map.set(m.id, m);
    S.pending.messages.set(m.id, m);
  }
  if (m.client_id && S.outbox.has(m.client_id)) {
    S.outbox.delete(m.client_id);
    S.pending.outboxDelete.add(m.client_id);
  }
}

let readTimer = 0;
function markReadSoon(id) {
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    const c = S.convs.get(id);
    if (c) c.unread_count = 0;
    S.api.post(`/conversations/${encodeURIComponent(id)}/read`).catch(() => {});
    scheduleRender();
  }, 300);
}

// ---------- persistence ----------

function newPending() {
  return { conversations: new Map(), messages: new Map(), deleteConversations: new Set(), outboxDelete: new Set(), outboxPut: new Map(), meta: false, agents: false, features: false };
}

let writeScheduled = false;
function scheduleWrite() {
  if (writeScheduled) return;
  writeScheduled = true;
  setTimeout(writeNow, 30);
}

async function writeNow() {
  writeScheduled = false;
  if (!S.db) return;
  const p = S.pending;
  S.pending = newPending();
  const meta = {};
  if (p.meta) meta.lastSeq = S.lastSeq;
  if (p.agents) meta.agents = [...S.agents.values()];
  if (p.features) meta.features = S.features;
  const touched = new Set([...p.messages.values()].map((m) => m.conversation_id));
  try {
    await S.db.write({
      conversations: [...p.conversations.values()],
      messages: [...p.messages.values()],
      deleteConversations: [...p.deleteConversations],
      outboxPut: [...p.outboxPut.values()],
      outboxDelete: [...p.outboxDelete],
      meta,
    });
    for (const id of touched) S.db.trim(id).catch(() => {});
  } catch (e) {
    console.warn("cache write failed", e);
  }
}

// ---------- outbox ----------

async function queueMessage(body) {
  const item = { ...body, client_id: f.uuid(), created_at: new Date().toISOString() };
  S.outbox.set(item.client_id, item);
  await S.db.write({ outboxPut: [item] });
  renderThread();
  renderList();
  flushOutbox();
}

// flushOutbox sends what was written while offline, oldest first. Each
// entry keeps its client_id, so a send repeated after a lost answer (or by
// another tab) is stored once by the server. A Web Lock keeps two tabs from
// sending at the same moment.
async function flushOutbox() {
  if (!S.session || !S.db) return;
  if (S.flushing) {
    S.flushAgain = true;
    return;
  }
  S.flushing = true;
  const run = async () => {
    const items = await S.db.outbox();
    for (const item of items) {
      if (item.failed || !S.session || S.erased.has(item.conversation_id)) continue;
      const body = { client_id: item.client_id };
      for (const k of ["text", "private", "media_id", "product_id"]) if (item[k]) body[k] = item[k];
      try {
        const r = await S.api.post(`/conversations/${encodeURIComponent(item.conversation_id)}/messages`, body);
        putMsg(r.message);
        S.outbox.delete(item.client_id);
        S.pending.outboxDelete.add(item.client_id);
        scheduleWrite();
      } catch (e) {
        if (e.retryable || e.status === 401) break;
        if (S.erased.has(item.conversation_id)) continue;
        item.failed = { code: e.code, message: e.message };
        S.outbox.set(item.client_id, item);
        S.pending.outboxPut.set(item.client_id, item);
        scheduleWrite();
      }
    }
  };
  try {
    if (navigator.locks) await navigator.locks.request(`onebox-outbox-${S.session.tenant.id}`, run);
    else await run();
  } catch (e) {
    console.warn("outbox", e);
  } finally {
    S.flushing = false;
    scheduleRender();
    if (S.flushAgain) {
      S.flushAgain = false;
      flushOutbox();
    }
  }
}

// ---------- rendering: connection, presence ----------

const CONN_TEXT = { connecting: "Connecting…", connected: "Live", reconnecting: "Reconnecting…", offline: "Offline" };

function setConn(state) {
  S.conn = state;
  const el = $("conn");
  el.dataset.state = state;
  el.querySelector(".conn-text").textContent = CONN_TEXT[state] || state;
  el.title = state === "offline" ? "Offline: what you write is sent when the connection is back." : CONN_TEXT[state];
}

function renderPresence() {
  const ul = $("presence");
  // The others: the account button already stands for this agent.
  const online = [...S.agents.values()].filter((a) => a.online && a.active !== false && a.id !== S.me.id);
  ul.innerHTML = online
    .slice(0, 5)
    .map((a) => `<li title="${f.esc(a.name)} is online">${f.avatar(a.name, "sm")}<span class="sr">${f.esc(a.name)}</span></li>`)
    .join("") + (online.length > 5 ? `<li class="more">+${online.length - 5}</li>` : "");
  ul.setAttribute("aria-label", online.length ? `Online: ${online.map((a) => a.name).join(", ")}` : "Nobody else online");
}

// ---------- rendering: list ----------

let renderScheduled = false;
function scheduleRender() {
  if (renderScheduled) return;
  renderScheduled = true;
  requestAnimationFrame(() => {
    renderScheduled = false;
    renderList();
    renderLabelsFilter();
    if (S.openId) renderThread();
  });
}

function matches(c) {
  const fl = S.filter;
  if (fl.status && c.status !== fl.status) return false;
  if (fl.assignee === "me" && c.assignee_id !== S.me.id) return false;
  if (fl.assignee === "none" && c.assignee_id) return false;
  if (fl.label && !(c.labels || []).some((l) => l.toLowerCase() === fl.label.toLowerCase())) return false;
  if (fl.q) {
    if (S.qMatches && S.qMatches.has(c.id)) return true;
    const q = fl.q.toLowerCase();
    const hay = `${c.contact.name} ${c.contact.handle} ${c.last_message ? c.last_message.text : ""}`.toLowerCase();
    if (!hay.includes(q)) return false;
  }
  return true;
}

function visibleConvs() {
  const out = [];
  for (const c of S.convs.values()) if (matches(c)) out.push([stamp(c.last_activity_at), c]);
  out.sort(([ta, a], [tb, b]) => (ta < tb ? 1 : ta > tb ? -1 : a.id < b.id ? 1 : -1));
  return out.map((x) => x[1]);
}

function pendingFor(convId) {
  return [...S.outbox.values()].filter((o) => o.conversation_id === convId);
}

function rowHTML(c) {
  const a = c.assignee_id ? S.agents.get(c.assignee_id) : null;
  const local = pendingFor(c.id);
  const last = local.length ? { ...local[local.length - 1], direction: "out", kind: local[local.length - 1].private ? "note" : "text" } : c.last_message;
  const labels = (c.labels || []).slice(0, 3).map((l) => `<span class="chip">${f.esc(l)}</span>`).join("");
  const status = c.status !== "open" ? `<span class="chip status-${c.status}">${c.status}</span>` : "";
  const assignee = a ? `<span class="assignee" title="Assigned to ${f.esc(a.name)}">${f.avatar(a.name, "xs")}<span>${a.id === S.me.id ? "You" : f.esc(a.name.split(" ")[0])}</span></span>` : "";
  const unread = c.unread_count > 0 ? `<span class="badge" aria-label="${c.unread_count} unread">${c.unread_count > 99 ? "99+" : c.unread_count}</span>` : "";
  return `${f.avatar(c.contact.name)}
<span class="conv-main">
  <span class="conv-top"><span class="conv-name">${f.esc(c.contact.name || c.contact.handle)}</span>${f.channelBadge(c.channel.type)}<time datetime="${f.esc(c.last_activity_at)}" title="${f.esc(f.fullTime(c.last_activity_at))}">${f.esc(f.shortTime(c.last_activity_at))}</time></span>
  <span class="conv-bottom"><span class="conv-preview${c.unread_count ? " strong" : ""}">${f.esc(f.preview(last))}</span>${unread}</span>
  ${labels || status || assignee ? `<span class="conv-meta">${status}${labels}${assignee}</span>` : ""}
</span>`;
}

// FIRST_ROWS is how many rows the first paint of a large cached list gets;
// the rest follows in the next task, so the app is usable at once.
const FIRST_ROWS = 40;

// listAnchor notes where the rows at the top of a scrolled list are, so a
// conversation that jumps to the top (or a new one) does not push what the
// agent is reading down. Chromium's scroll anchoring does this already
// (measuring forces its adjustment first, so this one finds nothing to do);
// browsers without it get the same behaviour. A few rows are kept, as the
// first may be the one that moves.
function listAnchor(ul) {
  if (ul.scrollTop <= 0) return null;
  const top = ul.getBoundingClientRect().top;
  const rows = [];
  for (const li of ul.children) {
    const r = li.getBoundingClientRect();
    if (r.bottom > top) {
      rows.push({ li, y: r.top - top, first: li === ul.firstChild });
      if (rows.length === 3) break;
    }
  }
  return rows;
}

function restoreAnchor(ul, rows) {
  if (!rows) return;
  const top = ul.getBoundingClientRect().top;
  for (const a of rows) {
    // A row that left the list or jumped to its top moved itself.
    if (a.li.parentNode !== ul || (a.li === ul.firstChild && !a.first)) continue;
    const dy = a.li.getBoundingClientRect().top - top - a.y;
    if (dy) ul.scrollTop += dy;
    return;
  }
}

function renderList() {
  if (!S.session) return;
  let list = visibleConvs();
  const ul = $("conv-list");
  const anchor = listAnchor(ul);
  if (ul.children.length === 0 && list.length > FIRST_ROWS * 2) {
    list = list.slice(0, FIRST_ROWS);
    setTimeout(scheduleRender, 0);
  }
  const existing = new Map();
  for (const li of ul.children) existing.set(li.dataset.id, li);
  let prev = null;
  for (const c of list) {
    let li = existing.get(c.id);
    if (li) existing.delete(c.id);
    else {
      li = document.createElement("li");
      li.dataset.id = c.id;
      const link = document.createElement("a");
      link.className = "conv";
      link.href = `/c/${encodeURIComponent(c.id)}`;
      li.append(link);
    }
    const link = li.firstChild;
    const html = rowHTML(c);
    if (link._html !== html) {
      link.innerHTML = html;
      link._html = html;
      link.setAttribute("aria-label", `${c.contact.name || c.contact.handle}, ${f.channelLabel(c.channel.type)}${c.unread_count ? `, ${c.unread_count} unread` : ""}: ${f.preview(c.last_message)}`);
    }
    const open = c.id === S.openId;
    link.classList.toggle("open", open);
    if (open) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
    link.classList.toggle("selected", c.id === S.selectedId);
    const want = prev ? prev.nextSibling : ul.firstChild;
    if (want !== li) ul.insertBefore(li, want);
    prev = li;
  }
  for (const li of existing.values()) li.remove();
  restoreAnchor(ul, anchor);
  $("list-empty").hidden = list.length > 0;
  $("list-empty").textContent = S.convs.size === 0 && S.conn !== "connected" && S.lastSeq === 0 ? "Loading conversations…" : "No conversations here.";
  $("load-more").hidden = !S.nextCursor;
  const unread = [...S.convs.values()].reduce((n, c) => n + (c.status !== "resolved" && c.unread_count ? 1 : 0), 0);
  if (!S.openId && location.pathname === "/") document.title = unread ? `(${unread}) OneBox` : "OneBox";
}

function renderLabelsFilter() {
  const sel = $("f-label");
  const labels = new Map();
  for (const c of S.convs.values()) for (const l of c.labels || []) labels.set(l.toLowerCase(), l);
  if (S.filter.label) labels.set(S.filter.label.toLowerCase(), S.filter.label);
  const sorted = [...labels.values()].sort((a, b) => a.localeCompare(b));
  const key = sorted.join("\n");
  if (sel._key === key) return;
  sel._key = key;
  sel.innerHTML = `<option value="">Any label</option>` + sorted.map((l) => `<option value="${f.esc(l)}">${f.esc(l)}</option>`).join("");
  sel.value = S.filter.label;
}

// ---------- rendering: conversation ----------

async function openConversation(id) {
  performance.mark("switch-start");
  S.openId = id;
  S.selectedId = id;
  $("panes").dataset.view = "thread";
  $("admin").hidden = true;
  $("thread").hidden = false;
  if (!S.msgs.has(id)) {
    const cached = await S.db.recentMessages(id);
    if (S.openId !== id) return;
    if (!S.msgs.has(id)) S.msgs.set(id, new Map(cached.map((m) => [m.id, m])));
    S.older.set(id, cached.length > 0);
  }
  $("text").value = drafts.get(id) || "";
  autoGrow();
  renderThread(true);
  renderList();
  performance.mark("switch-end");
  performance.measure("conversation-switch", "switch-start", "switch-end");
  if (!S.convs.has(id)) {
    try {
      const r = await S.api.get(`/conversations/${encodeURIComponent(id)}`);
      putConv(r.conversation);
      scheduleWrite();
    } catch (e) {
      if (e.status === 404) {
        toast("This conversation no longer exists.");
        return navigate("/", true);
      }
    }
  }
  loadMessages(id);
  const c = S.convs.get(id);
  if (c && c.unread_count > 0) markReadSoon(id);
}

async function loadMessages(id) {
  try {
    const r = await S.api.get(`/conversations/${encodeURIComponent(id)}/messages?limit=50`);
    if (S.erased.has(id)) return;
    const map = S.msgs.get(id) || new Map();
    S.msgs.set(id, map);
    for (const m of r.messages) {
      map.set(m.id, m);
      S.pending.messages.set(m.id, m);
    }
    S.older.set(id, r.messages.length === 50);
    scheduleWrite();
    if (S.openId === id) renderThread();
  } catch {
    // Offline: the cached messages stay on screen.
  }
}

async function loadOlder() {
  const id = S.openId;
  const map = S.msgs.get(id);
  if (!map || !map.size) return;
  const first = [...map.keys()].sort()[0];
  const box = $("messages");
  const before = box.scrollHeight - box.scrollTop;
  try {
    const r = await S.api.get(`/conversations/${encodeURIComponent(id)}/messages?before=${encodeURIComponent(first)}&limit=50`);
    for (const m of r.messages) map.set(m.id, m);
    S.older.set(id, r.messages.length === 50);
    renderThread();
    box.scrollTop = box.scrollHeight - before;
  } catch (e) {
    toast(e.message);
  }
}

function authorName(m) {
  if (m.author && m.author.type === "agent") {
    const a = S.agents.get(m.author.id);
    return a ? (a.id === S.me.id ? "You" : a.name) : "Agent";
  }
  if (m.author && m.author.type === "system") return "OneBox";
  return "";
}

function attachmentHTML(m) {
  let out = "";
  if (m.media && m.media.url) {
    const mime = m.media.mime || "";
    if (m.kind === "image" || mime.startsWith("image/")) {
      out += `<a class="media-img" href="${f.esc(m.media.url)}" target="_blank" rel="noopener"><img src="${f.esc(m.media.url)}" alt="${f.esc(m.media.name || "Image")}" loading="lazy" width="240" height="180"></a>`;
    } else {
      out += `<a class="file" href="${f.esc(m.media.url)}" target="_blank" rel="noopener" download><span class="file-icon" aria-hidden="true">⬇</span><span>${f.esc(m.media.name || "File")}</span><span class="muted">${f.esc(f.bytes(m.media.size))}</span></a>`;
    }
  }
  if (m.product) {
    const p = m.product;
    out += `<div class="product-card">${p.image_url ? `<img src="${f.esc(p.image_url)}" alt="" width="64" height="64">` : `<span class="product-ph" aria-hidden="true"><svg viewBox="0 0 24 24"><path d="M4 7l8-4 8 4v10l-8 4-8-4zM4 7l8 4 8-4M12 11v10" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linejoin="round"/></svg></span>`}<div><strong>${f.esc(p.title)}</strong><span class="muted">${f.esc(p.sku || "")}</span><span class="price">${f.esc(f.price(p.price))}</span></div></div>`;
  }
  return out;
}

function msgHTML(m, showDay, local) {
  const dir = m.kind === "note" || m.private ? "note" : m.direction;
  const who = dir === "in" ? "" : authorName(m);
  const status = local ? (m.failed ? "failed" : "pending") : dir === "out" ? m.status : "";
  const err = local ? m.failed : m.error;
  let fail = "";
  if (status === "failed") {
    const reason = err ? err.message || err.code : "Not delivered";
    fail = `<p class="fail" role="alert">Not delivered: ${f.esc(reason)} ${
      local ? `<button type="button" class="link" data-discard="${f.esc(m.client_id)}">Discard</button>` : `<button type="button" class="link" data-retry="${f.esc(m.id)}">Retry</button>`
    }</p>`;
  }
  return `${showDay ? `<p class="day"><span>${f.esc(f.dayHeading(m.created_at))}</span></p>` : ""}<div class="bubble">
${dir === "note" ? `<span class="note-tag">Private note${who ? ` · ${f.esc(who)}` : ""}</span>` : who && who !== "You" ? `<span class="author">${f.esc(who)}</span>` : ""}${attachmentHTML(m)}${m.text ? `<p class="text">${f.esc(m.text)}</p>` : ""}<span class="meta"><time datetime="${f.esc(m.created_at)}" title="${f.esc(f.fullTime(m.created_at))}">${f.esc(f.clock(m.created_at))}</time>${dir === "out" ? f.ticks(status) : ""}</span></div>${fail}`;
}

function renderThread(scrollToEnd = false) {
  const id = S.openId;
  if (!id || !S.session) return;
  const c = S.convs.get(id);
  $("thread-empty").hidden = true;
  $("thread-body").hidden = false;
  if (c) {
    $("t-name").textContent = c.contact.name || c.contact.handle;
    $("t-sub").innerHTML = `${f.channelBadge(c.channel.type)} <span>${f.esc(c.contact.handle)} · ${f.esc(c.channel.name)}</span>${
      c.status === "snoozed" && c.snoozed_until ? ` · <span>snoozed until ${f.esc(f.fullTime(c.snoozed_until))}</span>` : c.status !== "open" ? ` · <span>${c.status}</span>` : ""
    }`;
    document.title = `${c.contact.name || c.contact.handle} · OneBox`;
    renderAssign(c);
    const resolved = c.status === "resolved";
    const rb = $("t-resolve");
    rb.textContent = resolved ? "Reopen" : "Resolve";
    rb.className = resolved ? "ghost small" : "primary small";
    $("t-labels-view").innerHTML = (c.labels || []).map((l) => `<span class="chip">${f.esc(l)}</span>`).join("");
  }
  const box = $("messages");
  const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const msgs = [...(S.msgs.get(id) || new Map()).values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  const sentIds = new Set(msgs.map((m) => m.client_id).filter(Boolean));
  const items = msgs.map((m) => ({ key: m.id, m, local: false }));
  for (const o of pendingFor(id)) if (!sentIds.has(o.client_id)) items.push({ key: `local-${o.client_id}`, m: { ...o, direction: "out", kind: o.private ? "note" : "text" }, local: true });
  const ol = $("msg-list");
  const existing = new Map();
  for (const li of ol.children) existing.set(li.dataset.key, li);
  let prev = null;
  let prevDay = "";
  for (const it of items) {
    const day = f.dayKey(it.m.created_at);
    const html = msgHTML(it.m, day !== prevDay, it.local);
    prevDay = day;
    // A sent message replaces its local copy in place, without a jump.
    let li = existing.get(it.key) || (!it.local && it.m.client_id ? existing.get(`local-${it.m.client_id}`) : null);
    if (li) existing.delete(li.dataset.key);
    else li = document.createElement("li");
    li.dataset.key = it.key;
    const dir = it.m.kind === "note" ? "note" : it.m.direction;
    li.className = `msg ${dir}${it.local ? " local" : ""}`;
    li.dataset.status = it.local ? (it.m.failed ? "failed" : "pending") : it.m.status;
    if (li._html !== html) {
      li.innerHTML = html;
      li._html = html;
    }
    const want = prev ? prev.nextSibling : ol.firstChild;
    if (want !== li) ol.insertBefore(li, want);
    prev = li;
  }
  for (const li of existing.values()) li.remove();
  $("older").hidden = !S.older.get(id);
  renderTyping();
  if (scrollToEnd || atEnd) box.scrollTop = box.scrollHeight;
}

function renderAssign(c) {
  const sel = $("t-assign");
  const agents = [...S.agents.values()].filter((a) => a.active !== false || a.id === c.assignee_id);
  const key = JSON.stringify([agents.map((a) => [a.id, a.name]), c.assignee_id]);
  if (sel._key === key) return;
  sel._key = key;
  sel.innerHTML =
    `<option value="">Unassigned</option><option value="${f.esc(S.me.id)}">Me (${f.esc(S.me.name)})</option>` +
    agents.filter((a) => a.id !== S.me.id).map((a) => `<option value="${f.esc(a.id)}">${f.esc(a.name)}</option>`).join("");
  sel.value = c.assignee_id || "";
}

function renderTyping() {
  const el = $("typing");
  const now = Date.now();
  const m = S.typing.get(S.openId);
  const names = [];
  if (m) for (const [aid, exp] of m) {
    if (exp < now) m.delete(aid);
    else names.push((S.agents.get(aid) || { name: "Someone" }).name);
  }
  const text = names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…` : "";
  if (el.textContent !== text) el.textContent = text;
}

// ---------- actions ----------

async function patchConv(body, okText) {
  const id = S.openId;
  try {
    const r = await S.api.patch(`/conversations/${encodeURIComponent(id)}`, body);
    putConv(r.conversation);
    scheduleWrite();
    scheduleRender();
    if (okText) toast(okText);
  } catch (e) {
    toast(e.status === 0 ? "You are offline. Try again when the connection is back." : e.message);
    scheduleRender();
  }
}

function snoozeTime(kind) {
  const d = new Date();
  if (kind === "1h") return new Date(Date.now() + 3600e3);
  if (kind === "tomorrow") {
    d.setDate(d.getDate() + 1);
  } else {
    d.setDate(d.getDate() + (((8 - d.getDay()) % 7) || 7));
  }
  d.setHours(9, 0, 0, 0);
  return d;
}

function editLabels() {
  const c = S.convs.get(S.openId);
  if (!c) return;
  const known = new Set();
  for (const x of S.convs.values()) for (const l of x.labels || []) known.add(l);
  const d = dialog(`<form method="dialog" class="dialog-form">
    <h2 id="dialog-title">Labels</h2>
    <label for="labels-input">Labels, separated by commas</label>
    <input id="labels-input" list="labels-known" value="${f.esc((c.labels || []).join(", "))}" autocomplete="off">
    <datalist id="labels-known">${[...known].map((l) => `<option value="${f.esc(l)}">`).join("")}</datalist>
    <div class="dialog-actions"><button value="cancel" class="ghost">Cancel</button><button value="save" class="primary">Save</button></div>
  </form>`);
  const input = d.querySelector("#labels-input");
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
  d.onclose = () => {
    if (d.returnValue !== "save") return;
    const labels = input.value.split(",").map((s) => s.trim()).filter(Boolean);
    patchConv({ labels });
  };
}

async function retryMessage(id) {
  try {
    const r = await S.api.post(`/messages/${encodeURIComponent(id)}/retry`);
    putMsg(r.message);
    scheduleWrite();
    scheduleRender();
  } catch (e) {
    toast(e.message);
  }
}

async function discardLocal(clientId) {
  S.outbox.delete(clientId);
  await S.db.write({ outboxDelete: [clientId] });
  scheduleRender();
}

let lastTypingSent = 0;
function onComposerInput() {
  autoGrow();
  if (S.openId) drafts.set(S.openId, $("text").value);
  const now = Date.now();
  if (S.live && $("text").value && now - lastTypingSent > 2000 && !$("private").checked) {
    if (S.live.send({ type: "typing", conversation_id: S.openId })) lastTypingSent = now;
  }
}

function autoGrow() {
  const t = $("text");
  t.style.height = "auto";
  t.style.height = `${Math.min(t.scrollHeight, 160)}px`;
}

const drafts = new Map();
let attachment = null; // {media} or {product}

async function sendComposer(ev) {
  if (ev) ev.preventDefault();
  const id = S.openId;
  if (!id) return;
  const text = $("text").value.trim();
  if (!text && !attachment) return;
  const body = { conversation_id: id, text };
  if ($("private").checked) body.private = true;
  if (attachment && attachment.media) body.media_id = attachment.media.id;
  if (attachment && attachment.product) body.product_id = attachment.product.id;
  $("text").value = "";
  drafts.delete(id);
  clearAttachment();
  autoGrow();
  await queueMessage(body);
  $("messages").scrollTop = $("messages").scrollHeight;
}

function clearAttachment() {
  attachment = null;
  $("attach-preview").hidden = true;
  $("attach-preview").textContent = "";
}

function showAttachment(label) {
  const el = $("attach-preview");
  el.hidden = false;
  el.innerHTML = `<span>${f.esc(label)}</span><button type="button" class="link" id="attach-clear" aria-label="Remove attachment">Remove</button>`;
  el.querySelector("#attach-clear").onclick = clearAttachment;
}

async function uploadFile(file) {
  if (!file) return;
  const fd = new FormData();
  fd.append("file", file, file.name);
  showAttachment(`Uploading ${file.name}…`);
  try {
    const r = await S.api.request("POST", "/media", fd);
    attachment = { media: { ...r.media, name: file.name } };
    showAttachment(`${file.name} (${f.bytes(file.size)})`);
    $("text").focus();
  } catch (e) {
    clearAttachment();
    toast(e.status === 413 ? "This file is too large." : e.message);
  }
}

async function pickProduct() {
  const d = dialog(`<div class="dialog-form picker">
    <h2 id="dialog-title">Send a product</h2>
    <label for="product-q" class="sr">Search products</label>
    <input id="product-q" type="search" placeholder="Search products" autocomplete="off">
    <ul id="product-list" class="product-list" aria-label="Products"><li class="muted">Loading…</li></ul>
    <div class="dialog-actions"><button type="button" class="ghost" id="product-cancel">Cancel</button></div>
  </div>`);
  let products = [];
  const list = d.querySelector("#product-list");
  const render = () => {
    const q = d.querySelector("#product-q").value.toLowerCase();
    const shown = products.filter((p) => p.available !== false && `${p.title} ${p.sku}`.toLowerCase().includes(q));
    list.innerHTML = shown.length
      ? shown.map((p) => `<li><button type="button" class="product-pick" data-id="${f.esc(p.id)}"><strong>${f.esc(p.title)}</strong><span class="muted">${f.esc(p.sku)}</span><span class="price">${f.esc(f.price(p.price))}</span></button></li>`).join("")
      : `<li class="muted">No products found.</li>`;
  };
  d.querySelector("#product-q").addEventListener("input", render);
  d.querySelector("#product-cancel").onclick = () => d.close();
  list.addEventListener("click", (e) => {
    const b = e.target.closest(".product-pick");
    if (!b) return;
    const p = products.find((x) => x.id === b.dataset.id);
    attachment = { product: p };
    showAttachment(`Product: ${p.title} (${f.price(p.price)})`);
    d.close();
    $("text").focus();
  });
  d.querySelector("#product-q").focus();
  try {
    const r = await S.api.get("/catalog/products?limit=200");
    products = r.products || [];
    render();
  } catch (e) {
    list.innerHTML = `<li class="error">${f.esc(e.message)}</li>`;
  }
}

// ---------- push ----------

async function offerPush() {
  if (!push.pushSupported() || !S.session) return;
  const key = await push.serverKey(S.api);
  if (!key || !S.session) return;
  S.pushKey = key;
  const toggle = $("push-toggle");
  toggle.hidden = false;
  const reg = await navigator.serviceWorker.getRegistration();
  const sub = reg && (await reg.pushManager.getSubscription().catch(() => null));
  toggle.textContent = sub && Notification.permission === "granted" ? "Notifications are on" : "Turn on notifications";
  if (Notification.permission === "default" && !localStorage.getItem("onebox-push-dismissed")) $("push-offer").hidden = false;
}

async function enablePush() {
  $("push-offer").hidden = true;
  try {
    await push.subscribe(S.api, S.pushKey);
    $("push-toggle").textContent = "Notifications are on";
    toast("Notifications are on.");
  } catch (e) {
    toast(e.message || "Notifications could not be turned on.");
  }
}

// ---------- routing ----------

function navigate(path, replace = false) {
  if (location.pathname !== path) history[replace ? "replaceState" : "pushState"]({}, "", path);
  route();
}

function route() {
  if (!S.session) return;
  const p = location.pathname;
  closeMenus();
  if (p.startsWith("/c/")) {
    $("nav-inbox").setAttribute("aria-current", "page");
    $("nav-admin").removeAttribute("aria-current");
    openConversation(decodeURIComponent(p.slice(3)));
    return;
  }
  S.openId = null;
  $("thread-body").hidden = true;
  $("thread-empty").hidden = false;
  if (p.startsWith("/admin") && S.me.role === "admin") {
    $("nav-admin").setAttribute("aria-current", "page");
    $("nav-inbox").removeAttribute("aria-current");
    $("panes").dataset.view = "admin";
    $("thread").hidden = true;
    const el = $("admin");
    el.hidden = false;
    document.title = "Admin · OneBox";
    renderAdmin(el, { api: S.api, me: S.me, toast, dialog, navigate, path: p, agents: () => [...S.agents.values()], refreshAgents });
    return;
  }
  if (p !== "/") history.replaceState({}, "", "/");
  $("nav-inbox").setAttribute("aria-current", "page");
  $("nav-admin").removeAttribute("aria-current");
  $("panes").dataset.view = "inbox";
  $("admin").hidden = true;
  $("thread").hidden = false;
  renderList();
}

// ---------- small UI pieces ----------

let toastTimer = 0;
function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 4000);
}

function dialog(html) {
  const d = $("dialog");
  d.innerHTML = html;
  d.returnValue = "";
  d.onclose = null;
  d.showModal();
  return d;
}

function closeMenus() {
  for (const m of document.querySelectorAll(".menu")) m.hidden = true;
  for (const b of document.querySelectorAll("[aria-haspopup=menu]")) b.setAttribute("aria-expanded", "false");
}

function toggleMenu(button, menu) {
  const open = menu.hidden;
  closeMenus();
  menu.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
  if (open) {
    const first = menu.querySelector("button");
    if (first) first.focus();
  }
}

function moveSelection(delta) {
  const links = [...$("conv-list").querySelectorAll("a.conv")];
  if (!links.length) return;
  let i = links.findIndex((a) => a.parentElement.dataset.id === S.selectedId);
  i = i < 0 ? (delta > 0 ? 0 : links.length - 1) : Math.max(0, Math.min(links.length - 1, i + delta));
  const a = links[i];
  S.selectedId = a.parentElement.dataset.id;
  for (const x of links) x.classList.toggle("selected", x === a);
  a.focus();
  a.scrollIntoView({ block: "nearest" });
}

function onKey(e) {
  if (!S.session || e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  const typing = t.matches && t.matches("input, textarea, select, [contenteditable]");
  if ($("dialog").open) return;
  if (e.key === "Escape") {
    if (document.querySelector(".menu:not([hidden])")) {
      closeMenus();
      return;
    }
    if (typing) {
      t.blur();
      if (t.id === "text") $("messages").focus();
      return;
    }
    if (S.openId) {
      const id = S.openId;
      navigate("/");
      const link = document.querySelector(`#conv-list li[data-id="${CSS.escape(id)}"] a`);
      if (link) link.focus();
      return;
    }
    if (location.pathname.startsWith("/admin")) navigate("/");
    return;
  }
  if (typing) return;
  if (e.key === "j" || (e.key === "ArrowDown" && t.closest && t.closest("#conv-list"))) {
    e.preventDefault();
    moveSelection(1);
  } else if (e.key === "k" || (e.key === "ArrowUp" && t.closest && t.closest("#conv-list"))) {
    e.preventDefault();
    moveSelection(-1);
  } else if (e.key === "Enter" && S.selectedId && !(t.closest && t.closest("a, button"))) {
    e.preventDefault();
    navigate(`/c/${encodeURIComponent(S.selectedId)}`);
  } else if (e.key === "r" && S.openId) {
    e.preventDefault();
    $("text").focus();
  } else if (e.key === "/") {
    e.preventDefault();
    if (S.openId && matchMedia("(max-width: 760px)").matches) navigate("/");
    $("f-q").focus();
  }
}

let searchTimer = 0;
function setFilter(patch) {
  Object.assign(S.filter, patch);
  S.nextCursor = null;
  S.qMatches = null;
  for (const b of document.querySelectorAll("[data-assignee]")) b.setAttribute("aria-pressed", String(b.dataset.assignee === S.filter.assignee));
  renderList();
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => fetchList(false).catch(() => {}), patch.q !== undefined ? 250 : 0);
}

function wireStatic() {
  $("signin-form").addEventListener("submit", signIn);
  $("show-key").addEventListener("change", (e) => ($("access-key").type = e.target.checked ? "text" : "password"));
  document.addEventListener("click", (e) => {
    const a = e.target.closest("a[href]");
    if (a && a.origin === location.origin && !a.target && !a.hasAttribute("download") && !e.ctrlKey && !e.metaKey && !e.shiftKey && e.button === 0 && !a.pathname.startsWith("/api/")) {
      e.preventDefault();
      navigate(a.pathname);
      return;
    }
    if (!e.target.closest(".menu, [aria-haspopup=menu]")) closeMenus();
    const retry = e.target.closest("[data-retry]");
    if (retry) retryMessage(retry.dataset.retry);
    const discard = e.target.closest("[data-discard]");
    if (discard) discardLocal(discard.dataset.discard);
  });
  addEventListener("popstate", route);
  addEventListener("keydown", onKey);
  addEventListener("online", () => flushOutbox());
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && S.openId) {
      const c = S.convs.get(S.openId);
      if (c && c.unread_count) markReadSoon(S.openId);
    }
  });
  for (const b of document.querySelectorAll("[data-assignee]")) b.addEventListener("click", () => setFilter({ assignee: b.dataset.assignee }));
  $("f-status").addEventListener("change", (e) => setFilter({ status: e.target.value }));
  $("f-label").addEventListener("change", (e) => setFilter({ label: e.target.value }));
  $("f-q").addEventListener("input", (e) => setFilter({ q: e.target.value.trim() }));
  $("load-more").addEventListener("click", loadMore);
  $("back").addEventListener("click", () => navigate("/"));
  $("older").addEventListener("click", loadOlder);
  $("composer").addEventListener("submit", sendComposer);
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendComposer();
    }
  });
  $("text").addEventListener("input", onComposerInput);
  $("private").addEventListener("change", (e) => $("composer").classList.toggle("is-note", e.target.checked));
  $("attach").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", (e) => {
    uploadFile(e.target.files[0]);
    e.target.value = "";
  });
  $("product").addEventListener("click", pickProduct);
  $("t-assign").addEventListener("change", (e) => patchConv({ assignee_id: e.target.value || null }));
  $("t-labels").addEventListener("click", editLabels);
  $("t-snooze").addEventListener("click", () => toggleMenu($("t-snooze"), $("snooze-menu")));
  $("snooze-menu").addEventListener("click", (e) => {
    const b = e.target.closest("[data-snooze]");
    if (!b) return;
    closeMenus();
    const until = snoozeTime(b.dataset.snooze);
    patchConv({ status: "snoozed", snoozed_until: until.toISOString() }, `Snoozed until ${f.fullTime(until.toISOString())}.`);
  });
  $("t-resolve").addEventListener("click", () => {
    const c = S.convs.get(S.openId);
    if (c) patchConv({ status: c.status === "resolved" ? "open" : "resolved" }, c.status === "resolved" ? "Reopened." : "Resolved.");
  });
  $("me-button").addEventListener("click", () => toggleMenu($("me-button"), $("me-menu")));
  $("signout").addEventListener("click", () => {
    if (S.outbox.size && !confirm("Some messages have not been sent yet. Sign out and discard them?")) return;
    endSession(false);
  });
  $("push-yes").addEventListener("click", enablePush);
  $("push-toggle").addEventListener("click", () => {
    closeMenus();
    enablePush();
  });
  $("push-no").addEventListener("click", () => {
    $("push-offer").hidden = true;
    localStorage.setItem("onebox-push-dismissed", "1");
  });
}

// Exposed for diagnostics and the browser tests' measurements.
window.onebox = { state: S, navigate };

boot().catch((e) => {
  console.error(e);
  showSignIn("OneBox could not start. Reload the page to try again.");
});
