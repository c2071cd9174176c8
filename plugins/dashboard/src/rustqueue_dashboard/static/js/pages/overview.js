// Overview: totals as cards, throughput, the busiest queues and the latest events.
import { DASH, get } from "../api.js";
import { badge, clear, h, num, rate, table, when, jobLink } from "../dom.js";
import { live } from "../live.js";

const CARDS = [
  ["Total", "total", "var(--accent)"],
  ["Waiting", "waiting", "var(--info)"],
  ["Active", "active", "var(--accent)"],
  ["Delayed", "delayed", "var(--warn)"],
  ["Completed", "completed", "var(--ok)"],
  ["Failed", "failed", "var(--danger)"],
  ["Dead letter", "dlq", "var(--danger)"],
];

export function overviewPage(container) {
  const cards = h("div", { class: "grid cards", id: "overview-cards" });
  const queues = h("div", { class: "panel flush" });
  const events = h("div", { class: "panel flush" });
  const subtitle = h("span", { class: "sub" });
  container.append(
    h("div", { class: "page-head" }, h("h1", null, "Overview"), subtitle),
    cards,
    h("div", { class: "grid two" }, queues, events),
  );

  function renderEvents() {
    const rows = live.events.slice(0, 8).map((e) => h("tr", null,
      h("td", { class: "mono" }, when(e.timestamp).slice(11)),
      h("td", null, badge(e.event.replace("job.", ""))),
      h("td", null, h("a", { href: "#/queues/" + encodeURIComponent(e.queue) }, e.queue)),
      h("td", null, jobLink(e.job_id))));
    clear(events, h("h2", null, "Latest events"),
      table(["Time", "Event", "Queue", "Job"], rows, live.connected ? "Waiting for events…" : "Connecting to the event stream…"));
  }

  return {
    live: true,
    async refresh() {
      const data = await get(DASH + "/overview");
      const t = data.totals;
      subtitle.textContent = `${t.queues} queue${t.queues === 1 ? "" : "s"} · ${data.schedules.total} schedule${data.schedules.total === 1 ? "" : "s"} (${data.schedules.paused} paused)`;
      clear(cards, CARDS.map(([label, key, color]) => h("div", { class: "card", style: "--c:" + color, dataset: { key } },
        h("div", { class: "label" }, label), h("div", { class: "value" }, num(t[key])))),
      h("div", { class: "card", style: "--c:var(--ok)", dataset: { key: "rates" } },
        h("div", { class: "label" }, "Throughput"),
        h("div", { class: "value" }, rate(t.ack_rate_per_sec)),
        h("div", { class: "hint" }, "acked · " + rate(t.publish_rate_per_sec) + " published")));
      const busiest = [...data.queues].sort((a, b) => b.total - a.total).slice(0, 8);
      clear(queues, h("h2", null, "Queues"), table(
        ["Queue", ["Waiting", "num"], ["Active", "num"], ["DLQ", "num"], ["Publish", "num"], ["Ack", "num"]],
        busiest.map((q) => h("tr", null,
          h("td", null, h("a", { href: "#/queues/" + encodeURIComponent(q.name) }, q.name), " ", q.paused ? badge("paused") : null),
          h("td", { class: "num" }, num(q.counts.waiting)),
          h("td", { class: "num" }, num(q.counts.active)),
          h("td", { class: "num" }, num(q.counts.dlq)),
          h("td", { class: "num" }, rate(q.publish_rate_per_sec)),
          h("td", { class: "num" }, rate(q.ack_rate_per_sec)))),
        "No queues yet. Push a job or create a queue."));
      renderEvents();
    },
  };
}
