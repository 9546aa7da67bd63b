// Local storage of the app in IndexedDB. One small database ("onebox") holds
// the signed-in session, so the service worker can find it too; each tenant
// has a database of its own ("onebox-t-<tenant id>") with its conversations,
// their recent messages, the outbox and the last applied seq, so signing out
// or a revoked session drops exactly that tenant's data.

const META_DB = "onebox";
const TENANT_PREFIX = "onebox-t-";
// RECENT is how many messages per conversation are kept for offline reading.
export const RECENT = 100;

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = tx.onerror = () => reject(tx.error || new Error("transaction aborted"));
  });
}

function open(name, version, upgrade) {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(name, version);
    r.onupgradeneeded = () => upgrade(r.result);
    r.onsuccess = () => {
      const db = r.result;
      // Another tab deleting the database (sign-out) must not be blocked by us.
      db.onversionchange = () => db.close();
      resolve(db);
    };
    r.onerror = () => reject(r.error);
    r.onblocked = () => reject(new Error(`database ${name} is blocked by another tab`));
  });
}

function openMeta() {
  return open(META_DB, 1, (db) => db.createObjectStore("kv"));
}

async function metaOp(mode, fn) {
  const db = await openMeta();
  try {
    const tx = db.transaction("kv", mode);
    const out = fn(tx.objectStore("kv"));
    await done(tx);
    return out instanceof IDBRequest ? out.result : out;
  } finally {
    db.close();
  }
}

export const loadSession = () => metaOp("readonly", (s) => s.get("session"));
export const saveSession = (session) => metaOp("readwrite", (s) => s.put(session, "session"));
export const clearSession = () => metaOp("readwrite", (s) => s.delete("session"));

// TenantDB is the cache of one tenant.
export class TenantDB {
  static async open(tenantId) {
    const db = await open(TENANT_PREFIX + tenantId, 1, (db) => {
      db.createObjectStore("conversations", { keyPath: "id" });
      const m = db.createObjectStore("messages", { keyPath: "id" });
      m.createIndex("conversation", ["conversation_id", "id"]); // ids are time-ordered (UUIDv7)
      const o = db.createObjectStore("outbox", { keyPath: "client_id" });
      o.createIndex("created", "created_at");
      db.createObjectStore("meta");
      db.createObjectStore("push", { autoIncrement: true });
    });
    return new TenantDB(db, tenantId);
  }

  // destroy deletes a tenant's database; open connections close themselves
  // on the version change.
  static destroy(tenantId) {
    return new Promise((resolve) => {
      const r = indexedDB.deleteDatabase(TENANT_PREFIX + tenantId);
      r.onsuccess = r.onerror = r.onblocked = () => resolve();
    });
  }

  constructor(db, tenantId) {
    this.db = db;
    this.tenantId = tenantId;
  }

  close() {
    this.db.close();
  }

  async conversations() {
    const tx = this.db.transaction("conversations");
    return req(tx.objectStore("conversations").getAll());
  }

  // recentMessages returns up to RECENT newest messages, oldest first.
  async recentMessages(conversationId) {
    const tx = this.db.transaction("messages");
    const range = IDBKeyRange.bound([conversationId, ""], [conversationId, "\uffff"]);
    const out = [];
    await new Promise((resolve, reject) => {
      const c = tx.objectStore("messages").index("conversation").openCursor(range, "prev");
      c.onsuccess = () => {
        const cur = c.result;
        if (!cur || out.length >= RECENT) return resolve();
        out.push(cur.value);
        cur.continue();
      };
      c.onerror = () => reject(c.error);
    });
    return out.reverse();
  }

  async get(store, key) {
    return req(this.db.transaction(store).objectStore(store).get(key));
  }

  async meta(key) {
    return this.get("meta", key);
  }

  // write applies a batch in one transaction so the seq is never stored
  // ahead of the data it stands for.
  async write({ conversations = [], messages = [], deleteConversations = [], outboxPut = [], outboxDelete = [], meta = {} }) {
    // Deleting conversations also drops the notifications kept about them.
    const stores = ["conversations", "messages", "outbox", "meta"];
    if (deleteConversations.length) stores.push("push");
    const tx = this.db.transaction(stores, "readwrite");
    const cs = tx.objectStore("conversations");
    const ms = tx.objectStore("messages");
    for (const c of conversations) cs.put(c);
    for (const m of messages) ms.put(m);
    for (const id of deleteConversations) {
      cs.delete(id);
      const range = IDBKeyRange.bound([id, ""], [id, "\uffff"]);
      const c = ms.index("conversation").openCursor(range);
      c.onsuccess = () => {
        if (c.result) {
          c.result.delete();
          c.result.continue();
        }
      };
    }
    if (deleteConversations.length) {
      const gone = new Set(deleteConversations);
      const c = tx.objectStore("push").openCursor();
      c.onsuccess = () => {
        const cur = c.result;
        if (!cur) return;
        if (cur.value && gone.has(cur.value.conversation_id)) cur.delete();
        cur.continue();
      };
    }
    const ob = tx.objectStore("outbox");
    for (const o of outboxPut) ob.put(o);
    for (const id of outboxDelete) ob.delete(id);
    const mt = tx.objectStore("meta");
    for (const [k, v] of Object.entries(meta)) mt.put(v, k);
    await done(tx);
  }

  // trim keeps the RECENT newest messages of a conversation.
  async trim(conversationId) {
    const tx = this.db.transaction("messages", "readwrite");
    const range = IDBKeyRange.bound([conversationId, ""], [conversationId, "\uffff"]);
    let n = 0;
    const c = tx.objectStore("messages").index("conversation").openCursor(range, "prev");
    c.onsuccess = () => {
      const cur = c.result;
      if (!cur) return;
      if (++n > RECENT) cur.delete();
      cur.continue();
    };
    await done(tx);
  }

  async outbox() {
    const tx = this.db.transaction("outbox");
    return req(tx.objectStore("outbox").index("created").getAll());
  }

  async addPushEvent(ev) {
    const tx = this.db.transaction("push", "readwrite");
    tx.objectStore("push").add(ev);
    await done(tx);
  }

  async pushEvents() {
    return req(this.db.transaction("push").objectStore("push").getAll());
  }
}
