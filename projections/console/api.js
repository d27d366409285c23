// The public API, as the console calls it: every request carries the key typed at the
// login form (kept in sessionStorage, so it goes when the tab does).

const KEY = "envbranch.apiKey";

// The API is served from the same origin, the console under <api root>/console.
export const ROOT = location.pathname.replace(/\/console\/?$/, "");

export class ApiError extends Error {
  constructor(status, type, message, details) {
    super(message);
    this.status = status;
    this.type = type;
    this.details = details || {};
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function setApiKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetApiKey() {
  sessionStorage.removeItem(KEY);
}

// The key's ID: the part of eb_<key_id>_<secret> that may be shown.
export function keyId() {
  const parts = (apiKey() || "").split("_");
  return parts.length >= 3 ? parts[1] : "";
}

// One request. `namespace` goes in X-Namespace, `query` in the query string (empty
// values left out), `body` as JSON. An error answer throws an ApiError with the API's
// own status, type and message.
export async function call(method, path, { namespace, query, body } = {}) {
  const url = new URL(ROOT + path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") {
      url.searchParams.set(name, String(value));
    }
  }
  const headers = { Authorization: `Bearer ${apiKey() || ""}` };
  if (namespace) headers["X-Namespace"] = namespace;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, "network_error", `the API did not answer: ${error.message}`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    const message = error.message || text || response.statusText;
    if (response.status === 401) {
      window.dispatchEvent(new CustomEvent("envbranch:unauthorized", { detail: message }));
    }
    throw new ApiError(response.status, error.type || "http_error", message, error.details);
  }
  return data;
}

export const get = (path, options) => call("GET", path, options);
export const post = (path, body, options) => call("POST", path, { ...options, body });

// The total of a page, in any of the shapes the API answers lists with.
export function totalOf(page) {
  if (page.pagination && typeof page.pagination.total === "number") return page.pagination.total;
  if (typeof page.total_count === "number") return page.total_count;
  if (typeof page.total === "number") return page.total;
  return page.results.length;
}

// Every row of a POST .../list, page by page, up to `most` rows.
export async function listAll(path, { namespace, body = {}, most = 5000 } = {}) {
  const rows = [];
  const limit = 1000;
  for (let offset = 0; offset < most; offset += limit) {
    const page = await post(path, { ...body, limit, offset }, { namespace });
    rows.push(...page.results);
    if (!page.pagination || !page.pagination.has_more) break;
  }
  return rows;
}

// The total of a POST .../list without reading its rows.
export async function countOf(path, { namespace, body = {} } = {}) {
  return totalOf(await post(path, { ...body, limit: 1 }, { namespace }));
}

// What the key may do: "admin" (it sees every namespace), "scoped", or "unknown".
// Only admin keys may list the dead-letter queue, so its answer tells the two apart.
export async function keyRole() {
  try {
    await get("/v1/dlq", { query: { limit: 1 } });
    return "admin";
  } catch (error) {
    return error.status === 403 ? "scoped" : "unknown";
  }
}
