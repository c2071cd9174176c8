// HTTP access for the dashboard: the dashboard's own API under <prefix>/api and the /api/v1 routes.
// With auth on, a 401 asks for a token once; it is kept in sessionStorage and sent as a Bearer header.
// A cookie (path: the prefix) holds it too: the server takes it for the page and its assets only, which
// a browser cannot request with a header; the APIs accept the header alone.
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
  return sessionStorage.getItem(TOKEN_KEY) || cookieToken();
}

// The token of the sign-in cookie, e.g. set in another tab of this browser session.
function cookieToken() {
  const match = document.cookie.match(/(?:^|; )rustqueue_token=([^;]*)/);
  return match && match[1] ? decodeURIComponent(match[1]) : null;
}

// Set when the user dismissed the sign-in dialog: no new dialog until they click "Sign in".
let declined = false;

function setCookie(value) {
  const attributes = "; Path=" + (PREFIX || "/") + "; SameSite=Strict" + (location.protocol === "https:" ? "; Secure" : "");
  document.cookie = "rustqueue_token=" + (value ? encodeURIComponent(value) : "") + attributes + (value ? "" : "; Max-Age=0");
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  setCookie(value);
  const button = document.getElementById("signout");
  button.hidden = !value && !declined;
  button.textContent = value ? "Sign out" : "Sign in";
}

// The header button: "Sign out" forgets the token; "Sign in" (after the dialog was dismissed) opens it.
export async function signOutOrIn() {
  const signedIn = !!token();
  declined = false;
  setToken(null);
  accepted = false;
  if (!signedIn) await signInOnce("Authentication required");
}

// Whether the server accepted our credentials (or needs none): only then does the WebSocket connect,
// so that an unauthenticated tab never burns the server's failed-login budget with reconnects.
let accepted = false;

export function credentialsAccepted() {
  return accepted;
}

// One sign-in at a time: every request that meets a 401 waits for the same dialog, and a token is
// checked once (against <prefix>/api/session) before the waiting requests are sent again. Each
// refused attempt counts towards the server's lockout, so no request is sent that is bound to fail.
let signingIn = null;

async function signIn(message) {
  let text = message;
  for (;;) {
    const entered = await askToken(text);
    if (entered === null) {
      declined = true;
      setToken(null);
      throw new ApiError(401, "UNAUTHORIZED", message + " (use Sign in)");
    }
    const response = await fetch(DASH + "/session", { headers: { Authorization: "Bearer " + entered } });
    const payload = await response.json().catch(() => null);
    const error = payload && payload.error ? payload.error : {};
    if (response.status === 401) {
      text = "That token was not accepted: " + (error.message || "invalid token");
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, error.code || "HTTP_" + response.status, error.message || "Sign-in failed");
    setToken(entered);
    accepted = true;
    return;
  }
}

function signInOnce(message) {
  if (!signingIn) signingIn = signIn(message).finally(() => { signingIn = null; });
  return signingIn;
}

export async function request(method, url, body) {
  for (let attempt = 0; attempt < 3; attempt++) {
    if (signingIn) await signingIn;
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
      if (current && current !== token()) continue;  // signed in meanwhile: try again with the new token
      setToken(null);
      await signInOnce(current ? "That token was not accepted: " + message : message);
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
