// The service worker: keeps the app shell for offline use, shows push
// notifications, and opens the right conversation when one is clicked.
// VERSION is the build version the server writes in (a hash of the app's
// files), so every release gets a fresh cache and the old one is dropped.

const VERSION = "__ONEBOX_VERSION__";
const CACHE = `onebox-shell-${VERSION}`;
const SHELL = [
  "/",
  "/app.css",
  "/js/app.js",
  "/js/api.js",
  "/js/db.js",
  "/js/live.js",
  "/js/format.js",
  "/js/push.js",
  "/js/admin.js",
  "/manifest.json",
  "/assets/icon-192.png",
  "/assets/icon-512.png",
  "/assets/icon-maskable-512.png",
];

self.addEventListener("install", (e) => {
  e.waitUntil(
    caches
      .open(CACHE)
      .then((c) => c.addAll(SHELL.map((u) => new Request(u, { cache: "reload" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (e) => {
  e.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("onebox-shell-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

// Never cached: the API (data must be live, and it carries other people's
// data), webhooks and monitoring.
function backend(path) {
  return /^\/(api|webhooks|healthz|readyz|metrics|privacy)(\/|$)/.test(path);
}

self.addEventListener("fetch", (e) => {
  const req = e.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || backend(url.pathname)) return;
  if (req.mode === "navigate") {
    // Network first, so a new release is seen at once; the cached shell
    // when the server cannot be reached.
    e.respondWith(
      fetch(req).catch(async () => (await caches.match("/", { cacheName: CACHE })) || Response.error()),
    );
    return;
  }
  e.respondWith(
    caches.match(url.pathname, { cacheName: CACHE }).then((hit) => hit || fetch(req)),
  );
});

// ---------- push ----------

function idb(name, store, mode, fn) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(name);
    open.onerror = () => reject(open.error);
    open.onupgradeneeded = () => {
      // Never create a database the app has not made.
      open.transaction.abort();
    };
    open.onsuccess = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains(store)) {
        db.close();
        return resolve(undefined);
      }
      const tx = db.transaction(store, mode);
      const r = fn(tx.objectStore(store));
      tx.oncomplete = () => {
        db.close();
        resolve(r && r.result);
      };
      tx.onerror = tx.onabort = () => {
        db.close();
        reject(tx.error);
      };
    };
  });
}

const session = () => idb("onebox", "kv", "readonly", (s) => s.get("session")).catch(() => undefined);

async function pushContent(p) {
  let title = p.title;
  let body = p.body;
  if (title && body) return { title, body };
  // Private mode: the payload carries no text; fetch it with the session.
  const s = await session();
  if (!s || !s.tenant || s.tenant.id !== p.tenant_id) return { title: title || "New message", body: body || "" };
  try {
    const res = await fetch(`/api/v1/conversations/${encodeURIComponent(p.conversation_id)}`, { headers: { Authorization: `Bearer ${s.token}` }, cache: "no-store" });
    if (res.ok) {
      const { conversation: c } = await res.json();
      title = title || c.contact.name || c.contact.handle;
      body = body || (c.last_message ? c.last_message.text : "");
    }
  } catch {
    // Offline: a generic notification still tells the agent to look.
  }
  return { title: title || "New message", body: body || "" };
}

self.addEventListener("push", (e) => {
  let p = {};
  try {
    p = e.data ? e.data.json() : {};
  } catch {
    p = { body: e.data ? e.data.text() : "" };
  }
  e.waitUntil(
    (async () => {
      const { title, body } = await pushContent(p);
      if (p.tenant_id) {
        await idb(`onebox-t-${p.tenant_id}`, "push", "readwrite", (s) => s.add({ ...p, title, body, received_at: new Date().toISOString() })).catch(() => {});
      }
      await self.registration.showNotification(title, {
        body,
        tag: p.conversation_id ? `conversation-${p.conversation_id}` : "onebox",
        renotify: true,
        icon: "/assets/icon-192.png",
        badge: "/assets/icon-192.png",
        data: { conversation_id: p.conversation_id, tenant_id: p.tenant_id, seq: p.seq },
      });
    })(),
  );
});

async function openConversation(data) {
  const id = data && data.conversation_id;
  const path = id ? `/c/${encodeURIComponent(id)}` : "/";
  const wins = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const win = wins.find((w) => new URL(w.url).origin === self.location.origin);
  if (win) {
    win.postMessage({ type: "open-conversation", conversation_id: id });
    try {
      await win.focus();
    } catch {
      // Focusing needs the click's user activation; the message is enough.
    }
    return;
  }
  await self.clients.openWindow(path);
}

self.addEventListener("notificationclick", (e) => {
  e.notification.close();
  const p = openConversation(e.notification.data);
  try {
    e.waitUntil(p);
  } catch {
    // An event dispatched from script cannot extend its lifetime.
  }
});
