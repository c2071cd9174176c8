// Live events (the WebSocket stream) and the server log (polled from the dashboard API).
import { DASH, get } from "../api.js";
import { badge, clear, h, jobLink, when } from "../dom.js";
import { live } from "../live.js";

const LOG_POLL_MS = 1500;
const LOG_KEEP = 1000;

export function eventsPage(container) {
  const stream = h("div", { class: "stream", id: "event-stream" });
  const status = h("span", { class: "sub" });
  const clearButton = h("button", { class: "btn secondary", onclick: () => { live.clear(); render(); } }, "Clear");
  container.append(h("div", { class: "page-head" }, h("h1", null, "Live events"), status,
    h("div", { class: "actions" }, clearButton)), h("div", { class: "panel flush" }, stream));
  let newest = 0;

  function row(e) {
    return h("div", { class: "row" + (e.seq > newest ? " fresh" : ""), dataset: { event: e.event } },
      h("span", null, when(e.timestamp).slice(11)),
      h("span", null, badge(e.event.replace("job.", ""))),
      h("span", null, h("a", { href: "#/queues/" + encodeURIComponent(e.queue) }, e.queue)),
      h("span", null, jobLink(e.job_id, e.job_id), e.state ? h("span", { class: "muted" }, "  → " + e.state) : null));
  }

  function render() {
    status.textContent = (live.connected ? "Connected" : "Reconnecting…") + ` · last ${live.events.length} of the stream`;
    clear(stream, live.events.length ? live.events.map(row)
      : h("div", { class: "empty" }, "No events yet. Push a job and it shows up here."));
    newest = live.events.length ? live.events[0].seq : newest;
  }

  // At most five renders a second, however fast events arrive.
  let pending = null;
  const unsubscribe = live.subscribe(() => {
    if (!pending) pending = setTimeout(() => { pending = null; render(); }, 200);
  });
  return {
    live: false,
    refresh: async () => render(),
    unmount() { unsubscribe(); clearTimeout(pending); },
  };
}

export function logsPage(container) {
  const stream = h("div", { class: "stream log", id: "log-stream" });
  const level = h("select", { name: "level" }, ["DEBUG", "INFO", "WARNING", "ERROR"].map((l) =>
    h("option", { value: l, selected: l === "INFO" ? true : null }, l)));
  const follow = h("input", { type: "checkbox", checked: true });
  const status = h("span", { class: "sub" });
  container.append(h("div", { class: "page-head" }, h("h1", null, "Server log"), status,
    h("div", { class: "actions" }, h("label", { class: "field check" }, follow, h("span", null, "Follow")), level)),
  h("div", { class: "panel flush" }, stream));
  const ORDER = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 };
  let lines = [];
  let last = 0;
  let stopped = false;
  let timer = null;

  function render() {
    const min = ORDER[level.value];
    const shown = lines.filter((l) => (ORDER[l.level] || 0) >= min);
    clear(stream, shown.length ? shown.map((l) => h("div", { class: "row" },
      h("span", null, when(l.timestamp)), h("span", { class: "lvl-" + l.level }, l.level),
      h("span", { class: "muted" }, l.logger), h("span", { class: "msg" }, l.message)))
      : h("div", { class: "empty" }, "No log lines yet."));
    if (follow.checked) stream.scrollTop = stream.scrollHeight;
  }
  level.addEventListener("change", render);

  async function poll() {
    const data = await get(`${DASH}/logs?after=${last}&limit=500`);
    status.textContent = data.capturing ? "Streaming the server's log" : "Log capture is off";
    if (data.lines.length) {
      lines = lines.concat(data.lines).slice(-LOG_KEEP);
      last = data.last;
      render();
    } else if (!lines.length) {
      render();
    }
  }

  async function loop() {
    if (stopped) return;
    try { await poll(); } catch { /* the shell's refresh reports errors */ }
    if (!stopped) timer = setTimeout(loop, LOG_POLL_MS);
  }
  loop();
  return {
    live: false,
    refresh: async () => {},
    unmount() { stopped = true; clearTimeout(timer); },
  };
}
