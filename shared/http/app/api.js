// The REST API: fetch with the session's key; errors thrown as ApiError {status, code, message, field}.
export const session = {
  get key() { return sessionStorage.getItem("omnichat.key"); },
  get role() { return sessionStorage.getItem("omnichat.role"); },
  get me() { return sessionStorage.getItem("omnichat.me"); },
  set me(id) { if (id) sessionStorage.setItem("omnichat.me", id); },
  start(key, role) {
    sessionStorage.setItem("omnichat.key", key);
    sessionStorage.setItem("omnichat.role", role);
  },
  end() {
    for (const name of ["omnichat.key", "omnichat.role", "omnichat.me", "omnichat.status", "omnichat.seen", "omnichat.oauth"]) sessionStorage.removeItem(name);
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || null;
    this.field = e.field || null;
  }
}

let onUnauthorized = () => {};
export const setUnauthorizedHandler = (fn) => { onUnauthorized = fn; };

export async function api(method, path, body, key = session.key) {
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  let data = null;
  if (res.status !== 204) {
    try { data = await res.json(); } catch { data = null; }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && key && key === session.key) onUnauthorized();
    throw err;
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body === undefined ? {} : body);
export const put = (path, body) => api("PUT", path, body);

/** Every item of a paged list. */
export async function all(path, max = 2000) {
  const items = [];
  let page = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const data = await get(`${path}${sep}limit=500${page ? `&page=${encodeURIComponent(page)}` : ""}`);
    items.push(...(data.items || []));
    page = data.next;
  } while (page && items.length < max);
  return items;
}

/** Who a key is (`GET /v1/me`): {role, employee}, or null when the key is not accepted. */
export async function whoIs(key) {
  try {
    return await api("GET", "/v1/me", undefined, key);
  } catch {
    return null;
  }
}
