// Dead letter: pick a queue, see its dead jobs, retry one, the selected ones or all of them.
import { DASH, enc, get, post } from "../api.js";
import { act, ago, clear, confirmAction, h, jobLink, num, table } from "../dom.js";

export function dlqPage(container, params, app) {
  let queue = params.queue || "";
  const pills = h("div", { class: "pills", id: "dlq-queues" });
  const list = h("div", { class: "panel flush", id: "dlq-list" });
  const retrySelected = h("button", { class: "btn secondary", id: "dlq-retry-selected", disabled: true }, "Retry selected");
  const retryAll = h("button", { class: "btn", id: "dlq-retry-all" }, "Retry all");
  container.append(h("div", { class: "page-head" }, h("h1", null, "Dead letter"),
    h("span", { class: "sub" }, "Jobs that used up their attempts"),
    h("div", { class: "actions" }, retrySelected, retryAll)), pills, list);
  const selected = new Set();

  function updateButtons() {
    retrySelected.disabled = selected.size === 0;
    retrySelected.textContent = selected.size ? `Retry selected (${selected.size})` : "Retry selected";
    retryAll.disabled = !queue;
  }

  retrySelected.addEventListener("click", async () => {
    const ids = [...selected];
    const result = await act(retrySelected, () => post(`/api/v1/queues/${enc(queue)}/dlq/retry`, { ids }),
      (r) => `Retried ${r.retried} job(s)` + (r.failed ? `, ${r.failed} failed` : ""));
    if (result) { selected.clear(); app.refresh(); }
  });
  retryAll.addEventListener("click", async () => {
    if (!(await confirmAction(`Retry every dead job of ${queue}?`, "They go back to waiting with their attempts reset.", "Retry all"))) return;
    const result = await act(retryAll, () => post(`/api/v1/queues/${enc(queue)}/dlq/retry`),
      (r) => `Retried ${r.retried} job(s)` + (r.failed ? `, ${r.failed} failed` : ""));
    if (result) { selected.clear(); app.refresh(); }
  });

  return {
    live: true,
    async refresh() {
      const overview = await get(DASH + "/overview");
      const queues = overview.queues;
      if (!queue) {
        const withDead = queues.find((x) => x.counts.dlq > 0) || queues[0];
        queue = withDead ? withDead.name : "";
      }
      clear(pills, queues.map((x) => h("button", {
        class: "pill" + (x.name === queue ? " active" : ""), dataset: { queue: x.name },
        onclick: () => app.navigate("dlq", { queue: x.name }),
      }, x.name, h("span", { class: "count" }, num(x.counts.dlq)))));
      updateButtons();
      if (!queue) {
        clear(list, h("div", { class: "empty" }, "No queues yet."));
        return;
      }
      const data = await get(`/api/v1/queues/${enc(queue)}/dlq?limit=50`);
      for (const id of [...selected]) if (!data.jobs.some((j) => j.id === id)) selected.delete(id);
      updateButtons();
      const all = h("input", { type: "checkbox", title: "Select all", onchange: (ev) => {
        for (const j of data.jobs) ev.target.checked ? selected.add(j.id) : selected.delete(j.id);
        for (const box of list.querySelectorAll("tbody input")) box.checked = ev.target.checked;
        updateButtons();
      } });
      clear(list, table([h("span", null, all), "Job", "Name", "Last error", ["Attempts", "num"], "Failed", ""],
        data.jobs.map((j) => h("tr", { dataset: { job: j.id } },
          h("td", null, h("input", { type: "checkbox", checked: selected.has(j.id), onchange: (ev) => {
            ev.target.checked ? selected.add(j.id) : selected.delete(j.id);
            updateButtons();
          } })),
          h("td", null, jobLink(j.id)),
          h("td", null, j.name),
          h("td", { class: "err", title: j.last_error || "" }, j.last_error || "–"),
          h("td", { class: "num" }, `${j.attempt}/${j.max_attempts}`),
          h("td", { title: j.updated_at }, ago(j.updated_at)),
          h("td", null, h("button", { class: "btn secondary small dlq-retry", onclick: async (ev) => {
            const ok = await act(ev.target, () => post(`/api/v1/jobs/${j.id}/retry`), "Job sent back to waiting");
            if (ok) app.refresh();
          } }, "Retry")))),
        `The dead-letter queue of ${queue} is empty.`));
    },
  };
}
