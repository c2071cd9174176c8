// HTTP access for the dashboard: the dashboard's own API under <prefix>/api and the /api/v1 routes.
// With auth on, a 401 asks for a token once; it is kept in sessionStorage and sent as a Bearer header.
import { askToken } from "./dom.js";

const TOKEN_KEY = "rustqueue.dashboard.token";
export const PREFIX = document.querySelector('meta[name="rq-prefix"]').content.replace(/\/$/, "");
export const DASH = PREFIX + "/api";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

// Set when the user dismissed the sign-in dialog: no new dialog until they click "Sign in".
let declined = false;

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  const button = document.getElementById("signout");
  button.hidden = !value && !declined;
  button.textContent = value ? "Sign out" : "Sign in";
}

export function signInAgain() {
  declined = false;
  setToken(null);
}

let pendingPrompt = null;
// Whether the server accepted our credentials (or needs none): only then does the WebSocket connect,
// so that an unauthenticated tab never burns the server's failed-login budget with reconnects.
let accepted = false;

export function credentialsAccepted() {
  return accepted;
}

async function promptForToken(message) {
  // One dialog for every request that hit a 401 at the same time.
  if (!pendingPrompt) {
    pendingPrompt = askToken(message).finally(() => { pendingPrompt = null; });
  }
  return pendingPrompt;
}

export async function request(method, url, body) {
  for (let attempt = 0; attempt < 4; attempt++) {
    // While the sign-in dialog is open, wait for it rather than sending requests bound to fail
    // (each failure counts towards the server's lockout).
    if (pendingPrompt) await pendingPrompt;
    if (declined && !token()) throw new ApiError(401, "UNAUTHORIZED", "Authentication required (use Sign in)");
    const headers = { Accept: "application/json" };
    const current = token();
    if (current) headers.Authorization = "Bearer " + current;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      throw new ApiError(0, "NETWORK", "The server cannot be reached (" + err.message + ")");
    }
    const text = await response.text();
    let payload = null;
    try { payload = text ? JSON.parse(text) : null; } catch { payload = null; }
    if (response.status === 401) {
      accepted = false;
      const message = payload && payload.error ? payload.error.message : "Authentication required";
      if (declined) throw new ApiError(401, "UNAUTHORIZED", message + " (use Sign in)");
      const entered = await promptForToken(current ? "That token was not accepted: " + message : message);
      if (entered === null) {
        declined = true;
        setToken(null);
        throw new ApiError(401, "UNAUTHORIZED", message + " (use Sign in)");
      }
      setToken(entered);
      continue;
    }
    if (!response.ok || (payload && payload.ok === false)) {
      const error = payload && payload.error ? payload.error : {};
      throw new ApiError(response.status, error.code || "HTTP_" + response.status,
        error.message || response.statusText || "Request failed");
    }
    accepted = true;
    return payload;
  }
  throw new ApiError(401, "UNAUTHORIZED", "Authentication failed");
}

export const get = (url) => request("GET", url);
export const post = (url, body) => request("POST", url, body);
export const del = (url) => request("DELETE", url);
export const enc = encodeURIComponent;

export function eventsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let url = scheme + "//" + location.host + "/api/v1/events?events=all";
  const current = token();
  if (current) url += "&token=" + enc(current);
  return url;
}
