// One job: data, result, error, attempts, lease, timeline with logs, DAG parents and children, and
// the engine's explanation of why it is not running.
import { DASH, enc, get, post, del } from "../api.js";
import { act, ago, badge, clear, confirmAction, h, jobLink, json, shortId, table, when } from "../dom.js";

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [
    h("dt", null, k), h("dd", null, v === null || v === "" ? h("span", { class: "muted" }, "–") : v)]));
}

function timeline(job) {
  const items = [["Created", job.created_at, null]];
  if (job.delay_until) items.push(["Delayed until", job.delay_until, null]);
  if (job.started_at) items.push(["Started", job.started_at, job.worker_id ? "by " + job.worker_id : null]);
  if (job.last_heartbeat) items.push(["Last heartbeat", job.last_heartbeat, null]);
  for (const log of job.logs || []) items.push(["Log", log.timestamp, log.message]);
  if (job.completed_at) items.push([job.state === "completed" ? "Completed" : "Finished", job.completed_at, null]);
  items.push(["Last update", job.updated_at, "state " + job.state]);
  items.sort((a, b) => new Date(a[1]) - new Date(b[1]));
  return h("ul", { class: "timeline", id: "job-timeline" }, items.map(([label, at, note]) =>
    h("li", null, h("div", null, h("strong", null, label), note ? h("span", { class: "muted" }, " · " + note) : null),
      h("div", { class: "when" }, when(at) + " (" + ago(at) + ")"))));
}

function relatives(rows, emptyText) {
  return table(["Job", "Name", "Queue", "State"], rows.map((r) => r.missing
    ? h("tr", null, h("td", null, h("span", { class: "mono" }, shortId(r.id))), h("td", { colspan: 3, class: "muted" }, "deleted"))
    : h("tr", null, h("td", null, jobLink(r.id)), h("td", null, r.name),
      h("td", null, h("a", { href: "#/queues/" + enc(r.queue) }, r.queue)), h("td", null, badge(r.state)))), emptyText);
}

export function jobPage(container, params, app) {
  const id = params.id;
  const body = h("div", { id: "job-detail" });
  container.append(h("div", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " / ", h("span", { class: "mono" }, id)), body);

  function actions(job) {
    const out = [];
    const run = (label, cls, action, done, confirmText) => {
      const button = h("button", { class: "btn " + cls, id: "job-" + label.toLowerCase() }, label);
      button.addEventListener("click", async () => {
        if (confirmText && !(await confirmAction(label + " this job?", confirmText, label))) return;
        const result = await act(button, action, done);
        if (result !== undefined) label === "Delete" ? app.navigate("jobs", { queue: job.queue }) : app.refresh();
      });
      out.push(button);
    };
    if (job.state === "dlq" || job.state === "cancelled") run("Retry", "", () => post(`/api/v1/jobs/${id}/retry`), "Sent back to waiting");
    if (job.state === "delayed") run("Promote", "secondary", () => post(`/api/v1/jobs/${id}/promote`), "Promoted: waiting now");
    if (["waiting", "delayed", "blocked", "active"].includes(job.state)) {
      run("Cancel", "secondary", () => post(`/api/v1/jobs/${id}/cancel`), "Cancelled", "Its dependants are cancelled too.");
    }
    run("Delete", "danger", () => del(`/api/v1/jobs/${id}`), "Deleted", "The job is removed for good.");
    return out;
  }

  return {
    live: true,
    async refresh() {
      let data;
      try {
        data = await get(`${DASH}/jobs/${enc(id)}`);
      } catch (err) {
        if (err.status === 404 || err.status === 400) {
          clear(body, h("div", { class: "panel empty" }, err.message));
          return;
        }
        throw err;
      }
      const job = data.job;
      const reasons = data.reasons.length
        ? h("ul", { class: "reasons", id: "job-reasons" }, data.reasons.map((r) => h("li", null, badge(r.code, "warn"), h("span", null, r.detail))))
        : h("p", { class: "muted", id: "job-reasons" }, job.state === "waiting" ? "Next in line: it runs as soon as a worker asks." : "Nothing holds it back.");
      const progress = job.progress === null ? null
        : h("span", null, h("span", { class: "progress" }, h("span", { style: `width:${job.progress}%` })), " " + job.progress + "%");
      clear(body,
        h("div", { class: "page-head" }, h("h1", null, job.name), badge(job.state),
          h("a", { href: "#/queues/" + enc(job.queue) }, job.queue), h("div", { class: "actions" }, actions(job))),
        h("div", { class: "grid two" },
          h("div", { class: "panel" }, h("h2", null, "Details"), kv([
            ["ID", h("span", { class: "mono" }, job.id)],
            ["Custom ID", job.custom_id],
            ["Priority", String(job.priority)],
            ["Attempts", `${job.attempt} of ${job.max_attempts} (${job.backoff}, ${job.backoff_delay_ms} ms)`],
            ["Deliveries", String(job.deliveries)],
            ["Progress", progress],
            ["Tags", job.tags.length ? h("span", { class: "badges" }, job.tags.map((t) => badge(t, "grey"))) : null],
            ["Group", job.group_id ? h("a", { href: "#/jobs?group_id=" + enc(job.group_id) }, job.group_id) : null],
            ["Flow", job.flow_id ? h("a", { href: "#/jobs?flow_id=" + enc(job.flow_id) }, job.flow_id) : null],
            ["Unique key", job.unique_key],
            ["Timeout", job.timeout_ms === null ? null : job.timeout_ms + " ms"],
            ["TTL", job.ttl_ms === null ? null : job.ttl_ms + " ms"],
          ])),
          h("div", null,
            h("div", { class: "panel" }, h("h2", null, "Why is it not running?"), reasons),
            h("div", { class: "panel", id: "job-lease" }, h("h2", null, "Lease"), kv([
              ["Worker", job.worker_id],
              ["Lease expires", job.lease_expires_at ? when(job.lease_expires_at) + " (" + ago(job.lease_expires_at) + ")" : null],
              ["Lease length", job.lease_ms === null ? null : job.lease_ms + " ms"],
              ["Last heartbeat", job.last_heartbeat ? when(job.last_heartbeat) : null],
            ])))),
        job.last_error ? h("div", { class: "panel", id: "job-error" }, h("h2", null, "Last error"), json(job.last_error, true)) : null,
        h("div", { class: "grid two" },
          h("div", { class: "panel", id: "job-data" }, h("h2", null, "Data"), json(job.data)),
          h("div", { class: "panel", id: "job-result" }, h("h2", null, "Result"),
            job.result === null ? h("p", { class: "muted" }, "No result yet.") : json(job.result))),
        h("div", { class: "grid two" },
          h("div", { class: "panel" }, h("h2", null, "Timeline"), timeline(job)),
          h("div", null,
            h("div", { class: "panel flush", id: "job-parents" }, h("h2", null, "Depends on"), relatives(data.parents, "No parents.")),
            h("div", { class: "panel flush", id: "job-children" }, h("h2", null, "Dependants" + (data.children_truncated ? " (first 200)" : "")),
              relatives(data.children, "No dependants.")))),
        job.metadata !== undefined ? h("div", { class: "panel" }, h("h2", null, "Metadata"), json(job.metadata)) : null);
    },
  };
}
