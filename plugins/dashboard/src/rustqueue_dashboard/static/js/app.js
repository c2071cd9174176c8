// The dashboard shell: hash router, header (version, live dot, clock), 5-second refresh, error banner.
import { ApiError, DASH, get, setToken, signOutOrIn, token } from "./api.js";
import { clear, duration } from "./dom.js";
import { live } from "./live.js";
import { overviewPage } from "./pages/overview.js";
import { queuesPage } from "./pages/queues.js";
import { queuePage } from "./pages/queue.js";
import { jobsPage } from "./pages/jobs.js";
import { jobPage } from "./pages/job.js";
import { dlqPage } from "./pages/dlq.js";
import { schedulesPage } from "./pages/schedules.js";
import { eventsPage, logsPage } from "./pages/streams.js";

const REFRESH_MS = 5000;
const PAGES = {
  overview: overviewPage, queues: queuesPage, queue: queuePage, jobs: jobsPage, job: jobPage,
  dlq: dlqPage, schedules: schedulesPage, events: eventsPage, logs: logsPage,
};
const NAV_OF = { queue: "queues", job: "jobs" };

let current = null;
let generation = 0;
let liveTimer = null;

export function parseRoute(hash) {
  const raw = (hash || "").replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = Object.fromEntries(new URLSearchParams(query || ""));
  if (parts[0] === "jobs" && parts[1]) return { page: "job", params: { ...params, id: parts[1] } };
  if (parts[0] === "queues" && parts[1]) return { page: "queue", params: { ...params, name: parts[1] } };
  return { page: PAGES[parts[0]] ? parts[0] : "overview", params };
}

export function navigate(path, params) {
  const query = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v !== "" && v != null));
  const text = query.toString();
  location.hash = "#/" + path + (text ? "?" + text : "");
}

function showError(err) {
  const banner = document.getElementById("error-banner");
  if (!err) {
    banner.hidden = true;
    return;
  }
  banner.hidden = false;
  banner.textContent = err instanceof ApiError && err.status === 0 ? err.message : "Request failed: " + err.message;
}

async function refresh() {
  if (!current || !current.refresh) return;
  const mine = generation;
  try {
    await current.refresh();
    if (mine === generation) {
      showError(null);
      document.getElementById("refreshed").textContent = "Updated " + new Date().toLocaleTimeString("en-GB");
    }
  } catch (err) {
    if (mine === generation) showError(err);
  }
}

async function route() {
  const { page, params } = parseRoute(location.hash);
  generation += 1;
  if (current && current.unmount) current.unmount();
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === (NAV_OF[page] || page));
  }
  const container = clear(document.getElementById("page"));
  container.dataset.page = page;
  current = PAGES[page](container, params, { navigate, refresh });
  await refresh();
}

async function header() {
  try {
    // Public route: fetched without credentials, so it never counts as a failed sign-in.
    const response = await fetch("/api/v1/health", { headers: { Accept: "application/json" } });
    const health = await response.json();
    document.getElementById("version").textContent = "v" + health.version + " · " + health.status;
    document.getElementById("uptime").textContent = "Uptime " + duration(health.uptime_seconds);
  } catch {
    document.getElementById("version").textContent = "server unreachable";
  }
}

function tick() {
  document.getElementById("clock").textContent = new Date().toISOString().slice(11, 19) + " UTC";
}

async function start() {
  setToken(token());
  document.getElementById("signout").addEventListener("click", async () => {
    try { await signOutOrIn(); } catch (err) { showError(err); }
    live.reconnect();
    route();
  });
  window.addEventListener("hashchange", route);
  live.subscribe(() => {
    // Coalesce bursts of events into one refresh of the visible page.
    if (!current || !current.live || liveTimer) return;
    liveTimer = setTimeout(() => { liveTimer = null; refresh(); }, 700);
  });
  tick();
  header();
  setInterval(tick, 1000);
  // Sign in (when the server asks for it) before the page and the event stream start.
  try { await get(DASH + "/session"); } catch (err) { showError(err); }
  live.start();
  setInterval(() => { header(); refresh(); }, REFRESH_MS);
  route();
}

start();
