// Jobs: a filtered listing (queue, state, flow, group, tags) with cursor paging.
import { DASH, enc, get } from "../api.js";
import { ago, badge, clear, field, h, jobLink, num, select, table } from "../dom.js";

const STATES = ["", "waiting", "active", "delayed", "blocked", "completed", "failed", "dlq", "cancelled"];
const PAGE_SIZE = 25;

export function jobsPage(container, params, app) {
  const filters = { queue: params.queue || "", state: params.state || "", flow_id: params.flow_id || "",
    group_id: params.group_id || "", tags: params.tags || "" };
  const queue = select("queue", [["", "All queues"]], filters.queue);
  const state = select("state", STATES.map((s) => [s, s || "Any state"]), filters.state);
  const flow = h("input", { name: "flow_id", value: filters.flow_id, placeholder: "flow id", size: 14 });
  const group = h("input", { name: "group_id", value: filters.group_id, placeholder: "group id", size: 12 });
  const tags = h("input", { name: "tags", value: filters.tags, placeholder: "tag1,tag2", size: 14 });
  const goto = h("input", { name: "job_id", placeholder: "job id", size: 20 });
  const form = h("form", { class: "toolbar", id: "job-filters" },
    field("Queue", queue), field("State", state), field("Flow", flow), field("Group", group), field("Tags", tags),
    h("button", { class: "btn", type: "submit" }, "Filter"),
    h("button", { class: "btn secondary", type: "button", onclick: () => app.navigate("jobs") }, "Reset"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    app.navigate("jobs", { queue: queue.value, state: state.value, flow_id: flow.value.trim(),
      group_id: group.value.trim(), tags: tags.value.trim() });
  });
  const gotoForm = h("form", { class: "form" }, goto, h("button", { class: "btn secondary", type: "submit" }, "Open job"));
  gotoForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (goto.value.trim()) app.navigate("jobs/" + enc(goto.value.trim()));
  });
  const list = h("div", { class: "panel flush", id: "job-list" });
  container.append(
    h("div", { class: "page-head" }, h("h1", null, "Jobs"), h("div", { class: "actions" }, gotoForm)),
    h("div", { class: "panel" }, form), list);

  // Cursor paging: the cursors of the pages seen so far, so that "Previous" can go back.
  const cursors = [null];
  let pageIndex = 0;
  let queuesLoaded = false;

  async function loadQueues() {
    const data = await get(DASH + "/overview");
    const names = data.queues.map((x) => x.name);
    if (filters.queue && !names.includes(filters.queue)) names.push(filters.queue);
    clear(queue, h("option", { value: "" }, "All queues"),
      names.map((n) => h("option", { value: n, selected: n === filters.queue ? true : null }, n)));
    queuesLoaded = true;
  }

  async function load() {
    const query = new URLSearchParams({ limit: PAGE_SIZE });
    for (const [key, value] of Object.entries(filters)) if (value) query.set(key, value);
    if (cursors[pageIndex]) query.set("cursor", cursors[pageIndex]);
    const data = await get(DASH + "/jobs?" + query);
    cursors[pageIndex + 1] = data.next_cursor;
    const prev = h("button", { class: "btn secondary small", id: "page-prev", disabled: pageIndex === 0 ? true : null,
      onclick: () => { pageIndex -= 1; load(); } }, "← Previous");
    const next = h("button", { class: "btn secondary small", id: "page-next", disabled: data.next_cursor ? null : true,
      onclick: () => { pageIndex += 1; load(); } }, "Next →");
    clear(list, table(
      ["Job", "Name", "Queue", "State", ["Priority", "num"], ["Attempts", "num"], "Tags", "Created", "Updated"],
      data.jobs.map((j) => h("tr", { dataset: { job: j.id } },
        h("td", null, jobLink(j.id)),
        h("td", null, j.name),
        h("td", null, h("a", { href: "#/queues/" + enc(j.queue) }, j.queue)),
        h("td", null, badge(j.state)),
        h("td", { class: "num" }, String(j.priority)),
        h("td", { class: "num" }, `${j.attempt}/${j.max_attempts}`),
        h("td", null, h("span", { class: "badges" }, j.tags.map((t) => badge(t, "grey")))),
        h("td", { title: j.created_at }, ago(j.created_at)),
        h("td", { title: j.updated_at }, ago(j.updated_at)))),
      "No job matches these filters."),
    h("div", { class: "pager" }, h("span", { class: "muted" }, `Page ${pageIndex + 1} · ${num(data.jobs.length)} shown`), prev, next));
  }

  return {
    live: false,
    async refresh() {
      if (!queuesLoaded) await loadQueues();
      await load();
    },
  };
}
