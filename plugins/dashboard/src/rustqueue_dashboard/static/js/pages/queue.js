// One queue: counts, rates, charts from the sampled time series, administration (pause, rename,
// duplicates, purge, delete) and a test publish / consume / ack / nack.
import { DASH, enc, get, post, del } from "../api.js";
import { act, badge, checkField, clear, confirmAction, field, h, num, rate, when, jobLink } from "../dom.js";
import { lineChart, legend } from "../chart.js";

const RATE_SERIES = [["publish_rate", "Published/s", "#4f46e5"], ["ack_rate", "Acked/s", "#16a34a"], ["fail_rate", "Failed/s", "#dc2626"]];
const DEPTH_SERIES = [["pending", "Pending", "#0284c7"], ["locked", "Locked (active)", "#7c3aed"], ["dlq", "Dead letter", "#dc2626"]];

export function queuePage(container, params, app) {
  const queue = params.name;
  const q = enc(queue);
  const head = h("div", { class: "page-head" });
  const cards = h("div", { class: "grid cards wide" });
  const rateChart = h("div", { class: "panel", id: "rate-chart" });
  const depthChart = h("div", { class: "panel", id: "depth-chart" });
  const admin = h("div", { class: "panel", id: "queue-admin" });
  const tester = h("div", { class: "panel", id: "queue-tester" });
  container.append(h("div", { class: "crumbs" }, h("a", { href: "#/queues" }, "Queues"), " / ", queue),
    head, cards, h("div", { class: "grid two" }, rateChart, depthChart), h("div", { class: "grid two" }, admin, tester));

  let row = null;
  let adminBuilt = false;
  const dupToggle = h("input", { type: "checkbox", id: "dup-toggle" });
  const pauseButton = h("button", { class: "btn secondary", id: "pause-queue" }, "Pause");

  function buildAdmin() {
    const newName = h("input", { name: "new_name", placeholder: "new name", id: "rename-input" });
    const renameButton = h("button", { class: "btn secondary", id: "rename-queue", type: "submit" }, "Rename");
    const renameForm = h("form", { class: "form" }, field("Rename queue", newName), renameButton);
    renameForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const target = newName.value.trim();
      if (!target) return;
      const done = await act(renameButton, () => post(`${DASH}/queues/${q}/update`, { name: target }), "Renamed to " + target);
      if (done) app.navigate("queues/" + enc(target));
    });
    dupToggle.addEventListener("change", () => act(dupToggle,
      () => post(`${DASH}/queues/${q}/update`, { allow_duplicates: dupToggle.checked }),
      dupToggle.checked ? "Duplicates allowed" : "Duplicate payloads are now suppressed").then(app.refresh));
    pauseButton.addEventListener("click", () => {
      const paused = row && row.paused;
      act(pauseButton, () => post(`/api/v1/queues/${q}/${paused ? "resume" : "pause"}`), paused ? "Queue resumed" : "Queue paused").then(app.refresh);
    });
    const purge = h("button", { class: "btn danger", id: "purge-queue" }, "Purge");
    purge.addEventListener("click", async () => {
      if (!(await confirmAction("Purge " + queue + "?", "Waiting, delayed and blocked jobs are deleted. Active jobs and the configuration stay.", "Purge"))) return;
      await act(purge, () => post(`/api/v1/queues/${q}/purge`), (r) => `Purged ${r.purged} job(s)`);
      app.refresh();
    });
    const remove = h("button", { class: "btn danger", id: "delete-queue" }, "Delete queue");
    remove.addEventListener("click", async () => {
      if (!(await confirmAction("Delete " + queue + "?", "The queue's configuration and every job in it, active ones included, are deleted.", "Delete"))) return;
      const done = await act(remove, () => del(`/api/v1/queues/${q}`), (r) => `Deleted the queue and ${r.deleted} job(s)`);
      if (done) app.navigate("queues");
    });
    clear(admin, h("h2", null, "Administration"),
      h("div", { class: "form stack" },
        renameForm,
        checkField("Allow duplicate payloads", dupToggle),
        h("div", { class: "form" }, pauseButton, purge, remove)));
  }

  function buildTester() {
    const payload = h("textarea", { name: "payload", id: "publish-payload", placeholder: '{"hello": "world"}' });
    const priority = h("input", { name: "priority", id: "publish-priority", placeholder: "0", size: 8 });
    const retries = h("input", { name: "max_retries", type: "number", min: 0, value: 3, style: "width:90px" });
    const publish = h("button", { class: "btn", id: "publish-message", type: "submit" }, "Publish");
    const consume = h("button", { class: "btn secondary", id: "consume-message", type: "button" }, "Consume one");
    const result = h("div", { id: "consumed" });
    const form = h("form", { class: "form stack" }, field("Payload (text)", payload),
      h("div", { class: "form" }, field("Priority", priority), field("Max retries", retries), publish, consume));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = { payload: payload.value, max_retries: Number(retries.value || 3) };
      if (priority.value.trim() !== "") body.priority = priority.value.trim();
      const done = await act(publish, () => post(`${DASH}/queues/${q}/publish`, body), (r) => "Published " + r.id.slice(-8));
      if (done) app.refresh();
    });
    consume.addEventListener("click", async () => {
      const data = await act(consume, () => post(`${DASH}/queues/${q}/consume`, { consumer_id: "dashboard", timeout_seconds: 60 }));
      if (!data) return;
      if (!data.message) {
        clear(result, h("div", { class: "message-box muted" }, "The queue has no message ready."));
        return;
      }
      showMessage(result, data.message);
      app.refresh();
    });
    clear(tester, h("h2", null, "Test message"), form, result);
  }

  function showMessage(box, m) {
    const settle = (kind) => async (ev) => {
      const outcome = await act(ev.target, () => post(`${DASH}/messages/${m.id}/${kind}`, { lease_token: m.lease_token }),
        (r) => kind === "ack" ? "Acknowledged" : r.requeued ? "Returned to the queue" : "Moved to the dead-letter queue");
      if (outcome) { clear(box); app.refresh(); }
    };
    clear(box, h("div", { class: "message-box", id: "consumed-message" },
      h("dl", { class: "kv" },
        h("dt", null, "Message"), h("dd", null, jobLink(m.id, m.id)),
        h("dt", null, "Priority"), h("dd", null, String(m.priority)),
        h("dt", null, "Retries"), h("dd", null, `${m.retry_count} of ${m.max_retries}`),
        h("dt", null, "Locked until"), h("dd", null, when(m.lock_expires_at))),
      h("pre", { class: "json", style: "margin-top:10px" }, m.payload),
      h("div", { class: "form", style: "margin-top:10px" },
        h("button", { class: "btn", id: "ack-message", onclick: settle("ack") }, "Ack"),
        h("button", { class: "btn secondary", id: "nack-message", onclick: settle("nack") }, "Nack"))));
  }

  function renderChart(panel, title, id, defs, points, isRate) {
    const times = points.map((p) => p.t);
    const series = defs.map(([key, label, color]) => ({ label, color, values: points.map((p) => p[key]) }));
    clear(panel, h("div", { class: "panel-head" }, h("h2", null, title), h("span", { class: "muted", style: "margin-left:auto;font-size:12px" },
      points.length < 2 ? "collecting samples…" : `last ${points.length} samples`)),
    h("div", { id }, lineChart(series, times, { rate: isRate })), legend(series));
  }

  return {
    live: true,
    async refresh() {
      const [overview, series] = await Promise.all([get(DASH + "/overview"), get(`${DASH}/queues/${q}/series`)]);
      row = overview.queues.find((x) => x.name === queue) || null;
      if (!adminBuilt) { buildAdmin(); buildTester(); adminBuilt = true; }
      const c = row ? row.counts : {};
      clear(head, h("h1", null, queue),
        row ? h("span", { class: "badges" },
          row.paused ? badge("paused") : badge("live", "ok"),
          badge(row.config.ordering.replace("_", " "), "grey"), badge(row.config.priority_kind + " priority", "grey"),
          row.config.allow_duplicates ? null : badge("no duplicates", "warn")) : badge("not found", "danger"),
        h("div", { class: "actions" },
          h("a", { class: "btn secondary", href: "#/jobs?queue=" + q }, "Jobs"),
          h("a", { class: "btn secondary", href: "#/dlq?queue=" + q }, "Dead letter")));
      clear(cards, [["Pending", row ? row.pending : 0, "var(--info)"], ["Active", c.active, "var(--accent)"],
        ["Completed", c.completed, "var(--ok)"], ["Dead letter", c.dlq, "var(--danger)"]].map(([label, value, color]) =>
        h("div", { class: "card", style: "--c:" + color }, h("div", { class: "label" }, label), h("div", { class: "value" }, num(value)))),
      h("div", { class: "card", style: "--c:var(--ok)" }, h("div", { class: "label" }, "Publish rate"),
        h("div", { class: "value", id: "publish-rate" }, rate(row ? row.publish_rate_per_sec : 0)), h("div", { class: "hint" }, "60-second window")),
      h("div", { class: "card", style: "--c:var(--ok)" }, h("div", { class: "label" }, "Ack rate"),
        h("div", { class: "value" }, rate(row ? row.ack_rate_per_sec : 0)), h("div", { class: "hint" }, num(row ? row.acked : 0) + " acked since start")));
      renderChart(rateChart, "Throughput", "chart-rates", RATE_SERIES, series.points, true);
      renderChart(depthChart, "Depth", "chart-depth", DEPTH_SERIES, series.points, false);
      if (row) {
        dupToggle.checked = row.config.allow_duplicates;
        pauseButton.textContent = row.paused ? "Resume" : "Pause";
      }
    },
    unmount() {},
  };
}

