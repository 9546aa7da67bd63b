// Web Push: the app subscribes with the server's VAPID key and registers the
// subscription, so a new customer message reaches an agent whose app is
// closed. The service worker shows the notification (sw.js).

export function pushSupported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

function keyBytes(b64url) {
  const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((b64url.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

// serverKey returns the VAPID public key, or null when this server does not
// offer Web Push.
export async function serverKey(api) {
  try {
    const r = await api.get("/push/webpush/key");
    return r && r.public_key ? r.public_key : null;
  } catch {
    return null;
  }
}

export async function subscribe(api, key) {
  const perm = await Notification.requestPermission();
  if (perm !== "granted") throw new Error("Notifications are blocked for this site.");
  const reg = await navigator.serviceWorker.ready;
  let sub = await reg.pushManager.getSubscription();
  if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
  const j = sub.toJSON();
  const body = { endpoint: j.endpoint, keys: { p256dh: j.keys.p256dh, auth: j.keys.auth } };
  if (j.expirationTime) body.expirationTime = j.expirationTime;
  await api.post("/push/webpush", body);
  return sub;
}

export async function unsubscribe(api) {
  if (!pushSupported()) return;
  const reg = await navigator.serviceWorker.getRegistration();
  const sub = reg && (await reg.pushManager.getSubscription());
  if (!sub) return;
  try {
    await api.del("/push/webpush", { endpoint: sub.endpoint });
  } catch {
    // The session may be gone already; the subscription is dropped anyway.
  }
  await sub.unsubscribe();
}
