// Schedules: list with pause/resume and delete, and a form to create one (cron or interval).
import { enc, get, post, del } from "../api.js";
import { act, ago, badge, clear, confirmAction, field, h, num, select, table, when } from "../dom.js";

export function schedulesPage(container, params, app) {
  const name = h("input", { name: "name", placeholder: "nightly-report", required: true });
  const queue = h("input", { name: "queue", placeholder: "reports", required: true });
  const jobName = h("input", { name: "job_name", placeholder: "build-report", required: true });
  const kind = select("kind", [["cron", "Cron"], ["every", "Every (ms)"]], "cron");
  const timing = h("input", { name: "timing", placeholder: "*/5 * * * *", required: true });
  const data = h("input", { name: "job_data", placeholder: '{"key": "value"}', size: 22 });
  const create = h("button", { class: "btn", type: "submit", id: "create-schedule" }, "Create schedule");
  kind.addEventListener("change", () => { timing.placeholder = kind.value === "cron" ? "*/5 * * * *" : "60000"; });
  const form = h("form", { class: "form", id: "create-schedule-form" }, field("Name", name), field("Queue", queue),
    field("Job name", jobName), field("Timing", h("div", { class: "inline" }, kind, timing)), field("Job data (JSON)", data), create);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let jobData = null;
    if (data.value.trim()) {
      try { jobData = JSON.parse(data.value); } catch { return act(null, () => Promise.reject(new Error("Job data is not valid JSON"))); }
    }
    const body = { name: name.value.trim(), queue: queue.value.trim(), job_name: jobName.value.trim(), job_data: jobData };
    if (kind.value === "cron") body.cron_expr = timing.value.trim();
    else body.every_ms = Number(timing.value);
    const done = await act(create, () => post("/api/v1/schedules", body), "Schedule " + body.name + " saved");
    if (done) { form.reset(); app.refresh(); }
  });
  const list = h("div", { class: "panel flush", id: "schedule-list" });
  container.append(h("div", { class: "page-head" }, h("h1", null, "Schedules")),
    h("div", { class: "panel" }, h("h2", null, "Create a schedule"), form), list);

  return {
    live: false,
    async refresh() {
      const result = await get("/api/v1/schedules");
      clear(list, table(["Schedule", "Status", "Queue", "Job", "Timing", ["Runs", "num"], "Last run", "Next run", ""],
        result.schedules.map((s) => {
          const toggle = h("button", { class: "btn secondary small schedule-toggle" }, s.paused ? "Resume" : "Pause");
          toggle.addEventListener("click", async () => {
            const ok = await act(toggle, () => post(`/api/v1/schedules/${enc(s.name)}/${s.paused ? "resume" : "pause"}`),
              `${s.name} ${s.paused ? "resumed" : "paused"}`);
            if (ok) app.refresh();
          });
          const remove = h("button", { class: "btn danger small" }, "Delete");
          remove.addEventListener("click", async () => {
            if (!(await confirmAction(`Delete schedule ${s.name}?`, "Jobs it already pushed stay.", "Delete"))) return;
            if (await act(remove, () => del(`/api/v1/schedules/${enc(s.name)}`), "Schedule deleted")) app.refresh();
          });
          return h("tr", { dataset: { schedule: s.name } },
            h("td", null, h("strong", null, s.name)),
            h("td", { class: "schedule-status" }, s.paused ? badge("paused") : badge("active", "ok"),
              s.last_error ? h("span", { title: s.last_error }, " ", badge("skipped", "danger")) : null),
            h("td", null, h("a", { href: "#/queues/" + enc(s.queue) }, s.queue)),
            h("td", null, s.job_name),
            h("td", { class: "mono" }, s.cron_expr ? "cron: " + s.cron_expr : "every " + num(s.every_ms) + " ms"),
            h("td", { class: "num" }, num(s.execution_count) + (s.max_executions ? " / " + num(s.max_executions) : "")),
            h("td", { title: when(s.last_run_at) }, ago(s.last_run_at)),
            h("td", { title: when(s.next_run_at) }, s.paused ? "–" : s.next_run_at ? ago(s.next_run_at) : "next tick"),
            h("td", null, h("span", { class: "badges" }, toggle, remove)));
        }), "No schedules yet."));
    },
  };
}
