// Small pure helpers for rendering: escaping, times in the agent's locale,
// avatars, channel badges and delivery ticks.

export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short" });
const dateFmt = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dayHeadFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });

// shortTime is the list's time: the hour today, the weekday this week, else the date.
export function shortTime(iso, now = new Date()) {
  if (!iso) return "";
  const d = new Date(iso);
  const startOfDay = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  if (d >= startOfDay) return timeFmt.format(d);
  if (now - d < 6 * 86400e3) return dayFmt.format(d);
  return dateFmt.format(d);
}

export const clock = (iso) => (iso ? timeFmt.format(new Date(iso)) : "");
export const fullTime = (iso) => (iso ? fullFmt.format(new Date(iso)) : "");
export const dayHeading = (iso) => dayHeadFmt.format(new Date(iso));
export const dayKey = (iso) => new Date(iso).toDateString();

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const s = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || "?").slice(0, 2);
  return s.toUpperCase();
}

// hue gives each name a stable colour so people are recognised at a glance.
export function hue(s) {
  let h = 0;
  for (const ch of String(s)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 12;
}

export function avatar(name, extra = "") {
  return `<span class="avatar h${hue(name)} ${extra}" aria-hidden="true">${esc(initials(name))}</span>`;
}

const CHANNELS = {
  whatsapp: { label: "WhatsApp", letter: "W" },
  tiktok: { label: "TikTok", letter: "T" },
  sms: { label: "SMS", letter: "S" },
  demo: { label: "Demo", letter: "D" },
};

export function channelLabel(type) {
  return (CHANNELS[type] || { label: type || "Channel" }).label;
}

export function channelBadge(type) {
  const c = CHANNELS[type] || { label: type || "Channel", letter: "?" };
  return `<span class="chan chan-${esc(type)}" role="img" aria-label="${esc(c.label)}" title="${esc(c.label)}">${c.letter}</span>`;
}

const TICKS = {
  pending: ["Sending", '<svg viewBox="0 0 16 16" aria-hidden="true"><circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="1.5"/><path d="M8 4.5V8l2.5 1.5" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round"/></svg>'],
  sent: ["Sent", '<svg viewBox="0 0 16 16" aria-hidden="true"><path d="M3 8.5l3 3 7-7" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round"/></svg>'],
  delivered: ["Delivered", '<svg viewBox="0 0 20 16" aria-hidden="true"><path d="M2 8.5l3 3 7-7M8 11.5l1 0 7-7" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round"/></svg>'],
  read: ["Read", '<svg viewBox="0 0 20 16" aria-hidden="true"><path d="M2 8.5l3 3 7-7M8 11.5l1 0 7-7" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round"/></svg>'],
  failed: ["Not delivered", '<svg viewBox="0 0 16 16" aria-hidden="true"><circle cx="8" cy="8" r="6.5" fill="currentColor"/><path d="M8 4.5v4.2M8 11v.3" stroke="#fff" stroke-width="1.7" stroke-linecap="round"/></svg>'],
};

export function ticks(status) {
  const t = TICKS[status];
  if (!t) return "";
  return `<span class="tick tick-${status}" role="img" aria-label="${t[0]}" title="${t[0]}" data-status="${status}">${t[1]}</span>`;
}

export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function price(p) {
  if (!p) return "";
  try {
    const digits = new Intl.NumberFormat(undefined, { style: "currency", currency: p.currency }).resolvedOptions().maximumFractionDigits;
    return new Intl.NumberFormat(undefined, { style: "currency", currency: p.currency }).format(p.amount_minor / 10 ** digits);
  } catch {
    return `${p.amount_minor} ${p.currency}`;
  }
}

export function bytes(n) {
  if (!n && n !== 0) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / (1 << 20)).toFixed(1)} MB`;
}

// preview is a message as one line of the list.
export function preview(m) {
  if (!m) return "";
  const who = m.kind === "note" ? "Note: " : m.direction === "out" ? "You: " : "";
  let body = m.text;
  if (!body) body = m.kind === "image" ? "Photo" : m.kind === "product" ? (m.product && m.product.title) || "Product" : m.kind === "file" ? "File" : m.kind;
  return who + body;
}
