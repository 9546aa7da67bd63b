// Admin screens: agents and their access keys, channels, and the catalog.
// Raw access keys are shown once, in a dialog with a copy button, and never
// kept by the app.

import * as f from "./format.js";

const TABS = [
  ["agents", "Agents"],
  ["channels", "Channels"],
  ["catalog", "Catalog"],
];

const CHANNEL_FIELDS = {
  sms: [["send_url", "Gateway send URL", "url", true], ["auth_token", "Gateway auth token", "password", true], ["webhook_secret", "Webhook secret", "password", true], ["from", "Sender number", "text", false]],
  whatsapp: [["phone_number_id", "Phone number ID", "text", true], ["access_token", "Access token", "password", true], ["app_secret", "App secret", "password", true], ["verify_token", "Verify token", "text", true], ["api_base_url", "API base URL", "url", false], ["api_version", "API version", "text", false]],
  tiktok: [["business_id", "Business ID", "text", true], ["access_token", "Access token", "password", true], ["client_secret", "Client secret", "password", true], ["api_base_url", "API base URL", "url", false]],
  demo: [],
};

export function renderAdmin(el, ctx) {
  const tab = ctx.path.split("/")[2] || "agents";
  el.innerHTML = `<div class="admin-wrap">
    <h1 class="admin-title">Administration</h1>
    <nav class="tabs" aria-label="Administration">${TABS.map(([id, label]) => `<a href="/admin/${id}" class="tab"${id === tab ? ' aria-current="page"' : ""}>${label}</a>`).join("")}</nav>
    <div id="admin-body" class="admin-body"><p class="muted">Loading…</p></div>
  </div>`;
  const body = el.querySelector("#admin-body");
  const views = { agents, channels, catalog };
  (views[tab] || agents)(body, ctx).catch((e) => {
    body.innerHTML = `<p class="error" role="alert">${f.esc(e.status === 404 ? "This server does not offer this yet." : e.message)}</p>`;
  });
}

function showSecret(ctx, title, intro, secret) {
  const d = ctx.dialog(`<form method="dialog" class="dialog-form">
    <h2 id="dialog-title">${f.esc(title)}</h2>
    <p>${f.esc(intro)}</p>
    <p class="warn">This key is shown only now. Copy it and hand it over safely.</p>
    <div class="secret-row"><input id="secret" readonly value="${f.esc(secret)}" aria-label="Access key"><button type="button" class="primary" id="copy-secret">Copy</button></div>
    <p id="copy-status" class="muted" role="status"></p>
    <div class="dialog-actions"><button value="done" class="ghost">Done</button></div>
  </form>`);
  const input = d.querySelector("#secret");
  input.focus();
  input.select();
  d.querySelector("#copy-secret").onclick = async () => {
    const status = d.querySelector("#copy-status");
    try {
      await navigator.clipboard.writeText(secret);
      status.textContent = "Copied.";
    } catch {
      input.select();
      status.textContent = document.execCommand && document.execCommand("copy") ? "Copied." : "Select the key and copy it.";
    }
  };
  // The key leaves the page with the dialog: it is shown once.
  d.addEventListener("close", () => (d.textContent = ""), { once: true });
}

function confirmDialog(ctx, title, text, action) {
  return new Promise((resolve) => {
    const d = ctx.dialog(`<form method="dialog" class="dialog-form">
      <h2 id="dialog-title">${f.esc(title)}</h2><p>${f.esc(text)}</p>
      <div class="dialog-actions"><button value="cancel" class="ghost">Cancel</button><button value="ok" class="danger">${f.esc(action)}</button></div>
    </form>`);
    d.onclose = () => resolve(d.returnValue === "ok");
  });
}

async function agents(body, ctx) {
  const r = await ctx.api.get("/agents");
  const list = r.agents;
  body.innerHTML = `
  <section class="card" aria-labelledby="new-agent-title">
    <h2 id="new-agent-title">Add an agent</h2>
    <form id="agent-form" class="grid-form">
      <label>Name<input name="name" required maxlength="100" autocomplete="off"></label>
      <label>Email<input name="email" type="email" autocomplete="off"></label>
      <label>Role<select name="role"><option value="agent">Agent</option><option value="admin">Admin</option></select></label>
      <button class="primary" type="submit">Add agent</button>
    </form>
    <p class="error" role="alert" id="agent-error"></p>
  </section>
  <section aria-labelledby="agents-title">
    <h2 id="agents-title">Agents (${list.length})</h2>
    <ul class="admin-list">${list.map((a) => agentRow(a, ctx)).join("")}</ul>
  </section>`;
  body.querySelector("#agent-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const fd = new FormData(e.target);
    const req = { name: fd.get("name").trim(), role: fd.get("role") };
    if (fd.get("email").trim()) req.email = fd.get("email").trim();
    try {
      const out = await ctx.api.post("/agents", req);
      await agents(body, ctx);
      ctx.refreshAgents().catch(() => {});
      showSecret(ctx, `Access key for ${out.agent.name}`, `${out.agent.name} signs in to OneBox with this key.`, out.access_key);
    } catch (err) {
      body.querySelector("#agent-error").textContent = err.message;
    }
  });
  body.querySelector(".admin-list").addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-act]");
    if (!b) return;
    const id = b.dataset.agent;
    const agent = list.find((a) => a.id === id);
    try {
      if (b.dataset.act === "issue") {
        const out = await ctx.api.post(`/agents/${encodeURIComponent(id)}/keys`);
        await agents(body, ctx);
        showSecret(ctx, `New access key for ${agent.name}`, "Their other keys keep working until you revoke them.", out.access_key);
      } else if (b.dataset.act === "revoke") {
        if (!(await confirmDialog(ctx, "Revoke this key?", `Devices signed in with ${b.dataset.prefix}… are signed out at once.`, "Revoke"))) return;
        await ctx.api.del(`/agents/${encodeURIComponent(id)}/keys/${encodeURIComponent(b.dataset.key)}`);
        ctx.toast("Key revoked.");
        await agents(body, ctx);
      } else if (b.dataset.act === "deactivate") {
        if (!(await confirmDialog(ctx, `Deactivate ${agent.name}?`, "All their keys are revoked and their conversations become unassigned.", "Deactivate"))) return;
        await ctx.api.del(`/agents/${encodeURIComponent(id)}`);
        ctx.toast(`${agent.name} was deactivated.`);
        await agents(body, ctx);
        ctx.refreshAgents().catch(() => {});
      }
    } catch (err) {
      ctx.toast(err.message);
    }
  });
}

function agentRow(a, ctx) {
  const keys = (a.keys || [])
    .map(
      (k) => `<li class="key${k.revoked_at ? " revoked" : ""}"><code>${f.esc(k.prefix)}…</code>
      <span class="muted">${k.revoked_at ? `revoked ${f.esc(f.fullTime(k.revoked_at))}` : k.last_used_at ? `last used ${f.esc(f.fullTime(k.last_used_at))}` : "never used"}</span>
      ${k.revoked_at ? "" : `<button type="button" class="link danger-text" data-act="revoke" data-agent="${f.esc(a.id)}" data-key="${f.esc(k.id)}" data-prefix="${f.esc(k.prefix)}">Revoke</button>`}</li>`,
    )
    .join("");
  return `<li class="admin-item${a.active ? "" : " inactive"}">
    <div class="admin-item-head">${f.avatar(a.name)}<div><strong>${f.esc(a.name)}</strong>${a.id === ctx.me.id ? ' <span class="chip">you</span>' : ""}
      <span class="muted">${f.esc(a.email || "")} · ${a.role}${a.active ? (a.online ? " · online" : "") : " · deactivated"}</span></div>
      ${a.active ? `<div class="row-actions"><button type="button" class="ghost small" data-act="issue" data-agent="${f.esc(a.id)}">Issue key</button>${a.id === ctx.me.id ? "" : `<button type="button" class="ghost small danger-text" data-act="deactivate" data-agent="${f.esc(a.id)}">Deactivate</button>`}</div>` : ""}
    </div>
    ${keys ? `<ul class="keys" aria-label="Access keys of ${f.esc(a.name)}">${keys}</ul>` : ""}
  </li>`;
}

async function channels(body, ctx) {
  const r = await ctx.api.get("/channels");
  body.innerHTML = `
  <section class="card" aria-labelledby="new-channel-title">
    <h2 id="new-channel-title">Connect a channel</h2>
    <form id="channel-form" class="grid-form">
      <label>Type<select name="type" id="channel-type">${Object.keys(CHANNEL_FIELDS).map((t) => `<option value="${t}">${f.esc(f.channelLabel(t))}</option>`).join("")}</select></label>
      <label>Name<input name="name" required maxlength="100" autocomplete="off"></label>
      <div id="channel-fields" class="grid-form-sub"></div>
      <button class="primary" type="submit">Create channel</button>
    </form>
    <p class="error" role="alert" id="channel-error"></p>
  </section>
  <section aria-labelledby="channels-title">
    <h2 id="channels-title">Channels (${r.channels.length})</h2>
    <ul class="admin-list">${r.channels
      .map(
        (c) => `<li class="admin-item"><div class="admin-item-head">${f.channelBadge(c.type)}<div><strong>${f.esc(c.name)}</strong><span class="muted">${f.esc(f.channelLabel(c.type))} · created ${f.esc(f.fullTime(c.created_at))}</span></div>
        <div class="row-actions"><button type="button" class="ghost small danger-text" data-del="${f.esc(c.id)}" data-name="${f.esc(c.name)}">Delete</button></div></div>
        ${c.webhook_url ? `<div class="secret-row"><input readonly value="${f.esc(c.webhook_url)}" aria-label="Webhook URL of ${f.esc(c.name)}"><button type="button" class="ghost small" data-copy="${f.esc(c.webhook_url)}">Copy webhook URL</button></div>` : ""}</li>`,
      )
      .join("")}</ul>
  </section>`;
  const fields = body.querySelector("#channel-fields");
  const typeSel = body.querySelector("#channel-type");
  const drawFields = () => {
    fields.innerHTML = CHANNEL_FIELDS[typeSel.value]
      .map(([k, label, type, req]) => `<label>${f.esc(label)}${req ? "" : ' <span class="muted">(optional)</span>'}<input name="cfg_${k}" type="${type}" ${req ? "required" : ""} autocomplete="off" spellcheck="false"></label>`)
      .join("");
  };
  typeSel.addEventListener("change", drawFields);
  drawFields();
  body.querySelector("#channel-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const fd = new FormData(e.target);
    const config = {};
    for (const [k, v] of fd.entries()) if (k.startsWith("cfg_") && String(v).trim()) config[k.slice(4)] = String(v).trim();
    try {
      const out = await ctx.api.post("/channels", { type: fd.get("type"), name: fd.get("name").trim(), config });
      await channels(body, ctx);
      ctx.toast(out.channel.webhook_url ? "Channel created. Give its webhook URL to the provider." : "Channel created.");
    } catch (err) {
      body.querySelector("#channel-error").textContent = err.message;
    }
  });
  body.querySelector(".admin-list").addEventListener("click", async (e) => {
    const copy = e.target.closest("[data-copy]");
    if (copy) {
      try {
        await navigator.clipboard.writeText(copy.dataset.copy);
        ctx.toast("Webhook URL copied.");
      } catch {
        copy.previousElementSibling.select();
      }
      return;
    }
    const del = e.target.closest("[data-del]");
    if (!del) return;
    if (!(await confirmDialog(ctx, `Delete ${del.dataset.name}?`, "Its conversations stay; its webhooks stop being accepted and unsent replies fail.", "Delete"))) return;
    try {
      await ctx.api.del(`/channels/${encodeURIComponent(del.dataset.del)}`);
      await channels(body, ctx);
    } catch (err) {
      ctx.toast(err.message);
    }
  });
}

async function catalog(body, ctx) {
  const r = await ctx.api.get("/catalog/products?limit=200");
  const products = r.products || [];
  body.innerHTML = `
  <section class="card" aria-labelledby="new-product-title">
    <h2 id="new-product-title">Add a product</h2>
    <form id="product-form" class="grid-form">
      <label>SKU<input name="sku" required maxlength="64" autocomplete="off"></label>
      <label>Title<input name="title" required maxlength="200" autocomplete="off"></label>
      <label>Price<input name="amount" required inputmode="decimal" pattern="[0-9]+([.,][0-9]{1,2})?" placeholder="19.90"></label>
      <label>Currency<input name="currency" required maxlength="3" value="EUR" autocomplete="off"></label>
      <label class="span2">Description<input name="description" maxlength="1000" autocomplete="off"></label>
      <button class="primary" type="submit">Add product</button>
    </form>
    <p class="error" role="alert" id="product-error"></p>
  </section>
  <section aria-labelledby="products-title">
    <h2 id="products-title">Products (${products.length})</h2>
    <ul class="admin-list">${products
      .map(
        (p) => `<li class="admin-item"><div class="admin-item-head"><div><strong>${f.esc(p.title)}</strong><span class="muted">${f.esc(p.sku)} · ${f.esc(f.price(p.price))}${p.available === false ? " · unavailable" : ""}</span></div>
        <div class="row-actions"><button type="button" class="ghost small" data-edit="${f.esc(p.id)}" aria-label="Edit ${f.esc(p.title)}">Edit</button><button type="button" class="ghost small danger-text" data-del="${f.esc(p.id)}" aria-label="Delete ${f.esc(p.title)}">Delete</button></div></div></li>`,
      )
      .join("")}</ul>
  </section>`;
  body.querySelector("#product-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const fd = new FormData(e.target);
    const currency = fd.get("currency").trim().toUpperCase();
    const amount = Math.round(parseFloat(String(fd.get("amount")).replace(",", ".")) * 100);
    try {
      await ctx.api.post("/catalog/products", { sku: fd.get("sku").trim(), title: fd.get("title").trim(), description: fd.get("description").trim(), price: { amount_minor: amount, currency }, available: true });
      await catalog(body, ctx);
    } catch (err) {
      body.querySelector("#product-error").textContent = err.message;
    }
  });
  body.querySelector(".admin-list").addEventListener("click", async (e) => {
    const edit = e.target.closest("[data-edit]");
    if (edit) {
      const p = products.find((x) => x.id === edit.dataset.edit);
      if (p) editProduct(ctx, p, () => catalog(body, ctx));
      return;
    }
    const del = e.target.closest("[data-del]");
    if (!del) return;
    try {
      await ctx.api.del(`/catalog/products/${encodeURIComponent(del.dataset.del)}`);
      await catalog(body, ctx);
    } catch (err) {
      ctx.toast(err.message);
    }
  });
}

// parseAmount reads a price typed with a dot or a comma into minor units,
// or NaN.
function parseAmount(s) {
  const v = String(s).trim().replace(",", ".");
  return /^[0-9]+(\.[0-9]{1,2})?$/.test(v) ? Math.round(parseFloat(v) * 100) : NaN;
}

function editProduct(ctx, p, done) {
  const amount = ((p.price && p.price.amount_minor) || 0) / 100;
  const d = ctx.dialog(`<form method="dialog" class="dialog-form" id="product-edit">
    <h2 id="dialog-title">Edit ${f.esc(p.title)}</h2>
    <p class="muted">SKU ${f.esc(p.sku)}</p>
    <label>Title<input name="title" required maxlength="200" value="${f.esc(p.title)}" autocomplete="off"></label>
    <label>Price<input name="amount" required inputmode="decimal" value="${f.esc(amount.toFixed(2))}"></label>
    <label>Currency<input name="currency" required maxlength="3" value="${f.esc((p.price && p.price.currency) || "EUR")}" autocomplete="off"></label>
    <label>Description<input name="description" maxlength="1000" value="${f.esc(p.description || "")}" autocomplete="off"></label>
    <label class="check"><input type="checkbox" name="available"${p.available === false ? "" : " checked"}> Available to offer</label>
    <p class="error" role="alert" id="product-edit-error"></p>
    <div class="dialog-actions"><button value="cancel" class="ghost" formnovalidate>Cancel</button><button value="save" class="primary">Save</button></div>
  </form>`);
  const form = d.querySelector("#product-edit");
  form.addEventListener("submit", async (e) => {
    if (e.submitter && e.submitter.value !== "save") return;
    e.preventDefault();
    const fd = new FormData(form);
    const minor = parseAmount(fd.get("amount"));
    const err = d.querySelector("#product-edit-error");
    if (Number.isNaN(minor)) {
      err.textContent = "Type the price as a number, such as 19.90.";
      return;
    }
    try {
      await ctx.api.patch(`/catalog/products/${encodeURIComponent(p.id)}`, {
        title: fd.get("title").trim(),
        description: fd.get("description").trim(),
        price: { amount_minor: minor, currency: fd.get("currency").trim().toUpperCase() },
        available: fd.get("available") === "on",
      });
      d.close("saved");
      ctx.toast("Product saved.");
      done();
    } catch (ex) {
      err.textContent = ex.message;
    }
  });
}
