// Queues: every queue with counts and rates, and a form to create one with the qrusty queue model.
import { DASH, get, post } from "../api.js";
import { act, badge, checkField, field, h, num, rate, select, table, clear } from "../dom.js";

export const ORDERINGS = [["max_first", "MaxFirst (highest first)"], ["min_first", "MinFirst (lowest first)"],
  ["fifo", "FIFO"], ["lifo", "LIFO"]];
export const KINDS = [["numeric", "Numeric"], ["text", "Text"]];
const ORDER_LABEL = { max_first: "MaxFirst", min_first: "MinFirst", fifo: "FIFO", lifo: "LIFO" };

export function queuesPage(container, params, app) {
  const list = h("div", { class: "panel flush", id: "queue-list" });
  const name = h("input", { name: "name", placeholder: "e.g. emails", required: true, pattern: "[A-Za-z0-9._\\-]+" });
  const ordering = select("ordering", ORDERINGS, "max_first");
  const kind = select("priority_kind", KINDS, "numeric");
  const dups = h("input", { type: "checkbox", name: "allow_duplicates", checked: true });
  const create = h("button", { class: "btn", type: "submit", id: "create-queue" }, "Create queue");
  const form = h("form", { class: "form", id: "create-queue-form" },
    field("Name", name), field("Ordering", ordering), field("Priority kind", kind),
    checkField("Allow duplicates", dups), create);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { name: name.value.trim(), ordering: ordering.value, priority_kind: kind.value, allow_duplicates: dups.checked };
    const done = await act(create, () => post(DASH + "/queues", body), "Queue " + body.name + " created");
    if (done) {
      name.value = "";
      app.navigate("queues/" + encodeURIComponent(body.name));
    }
  });
  container.append(
    h("div", { class: "page-head" }, h("h1", null, "Queues")),
    h("div", { class: "panel" }, h("h2", null, "Create a queue"), form),
    list,
  );

  return {
    live: true,
    async refresh() {
      const data = await get(DASH + "/overview");
      clear(list, table(
        ["Queue", "Model", ["Waiting", "num"], ["Active", "num"], ["Delayed", "num"], ["Completed", "num"],
          ["Failed", "num"], ["DLQ", "num"], ["Publish", "num"], ["Ack", "num"]],
        data.queues.map((q) => h("tr", { dataset: { queue: q.name } },
          h("td", null, h("a", { href: "#/queues/" + encodeURIComponent(q.name) }, h("strong", null, q.name)), " ",
            q.paused ? badge("paused") : null),
          h("td", null, h("span", { class: "badges" },
            badge(ORDER_LABEL[q.config.ordering] || q.config.ordering, "grey"),
            badge(q.config.priority_kind, "grey"),
            q.config.allow_duplicates ? null : badge("no duplicates", "warn"))),
          h("td", { class: "num" }, num(q.counts.waiting)),
          h("td", { class: "num" }, num(q.counts.active)),
          h("td", { class: "num" }, num(q.counts.delayed)),
          h("td", { class: "num" }, num(q.counts.completed)),
          h("td", { class: "num" }, num(q.counts.failed)),
          h("td", { class: "num" }, num(q.counts.dlq)),
          h("td", { class: "num" }, rate(q.publish_rate_per_sec)),
          h("td", { class: "num" }, rate(q.ack_rate_per_sec)))),
        "No queues yet."));
    },
  };
}
