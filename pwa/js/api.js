// The JSON API client. Every call carries the session token; a 401 means the
// session is over (signed out elsewhere, key revoked, agent deactivated).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
  // retryable errors leave a request worth sending again later.
  get retryable() {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

export class Api {
  constructor(token, onUnauthorized) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  async request(method, path, body, { raw = false } = {}) {
    const headers = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let payload;
    if (body instanceof FormData) {
      payload = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(`/api/v1${path}`, { method, headers, body: payload, cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, "network", "You are offline or the server cannot be reached.");
    }
    if (res.status === 204) return null;
    let data = null;
    try {
      data = await res.json();
    } catch {
      // Proxies answer errors in HTML; the status says enough.
    }
    if (!res.ok) {
      const err = data && data.error ? data.error : {};
      if (res.status === 401 && this.token && this.onUnauthorized) this.onUnauthorized();
      throw new ApiError(res.status, err.code || "http_error", err.message || `The server answered ${res.status}.`);
    }
    return raw ? res : data;
  }

  get(path) { return this.request("GET", path); }
  post(path, body) { return this.request("POST", path, body); }
  patch(path, body) { return this.request("PATCH", path, body); }
  del(path, body) { return this.request("DELETE", path, body); }
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
