// The aggregator's HTTP API as the dashboard uses it: the session cookie (HttpOnly, set
// by /api/v1/auth/login) goes with every same-origin request; a request that changes
// something carries X-HallWatch-Request (docs/access.md). A 401 means "sign in again".

const CSRF = { "X-HallWatch-Request": "1" };

/** An HTTP error with its status and the server's detail. */
export class ApiError extends Error {
  constructor(status, detail, url) {
    super(`${url}: HTTP ${status}${detail ? ` (${detail})` : ""}`);
    this.status = status;
    this.detail = detail;
  }
}

const unauthorizedHandlers = new Set();

/** Call fn() when any request answers 401 (the session ended). */
export function onUnauthorized(fn) {
  unauthorizedHandlers.add(fn);
}

async function check(response, url) {
  if (response.ok) return response;
  let detail = "";
  try {
    const body = await response.json();
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    detail = response.statusText;
  }
  if (response.status === 401 && !url.endsWith("/auth/login")) {
    for (const fn of unauthorizedHandlers) fn();
  }
  throw new ApiError(response.status, detail, url);
}

/** GET a JSON document. */
export async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  await check(response, url);
  return response.json();
}

/** POST a JSON body (or none); returns the JSON answer, or null for 204. */
export async function postJson(url, body) {
  const headers = { Accept: "application/json", ...CSRF };
  const init = { method: "POST", headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  await check(response, url);
  return response.status === 204 ? null : response.json();
}

/** The path of a hall's resource, e.g. hallPath("h1", "posts"). */
export function hallPath(hall, ...rest) {
  return ["/api/v1/halls", encodeURIComponent(hall), ...rest].join("/");
}

/** Sign in; resolves to the session, rejects with ApiError (401: wrong password). */
export function login(username, password) {
  return postJson("/api/v1/auth/login", { username, password });
}

/** Sign out (always succeeds from the page's point of view). */
export async function logout() {
  try {
    await postJson("/api/v1/auth/logout");
  } catch (err) {
    console.warn("logout", err);
  }
}

/** Who is signed in, or null. */
export async function whoAmI() {
  try {
    return await getJson("/api/v1/auth/me");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}
