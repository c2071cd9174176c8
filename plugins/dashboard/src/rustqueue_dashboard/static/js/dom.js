// Small DOM and formatting helpers shared by every page.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = !!value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
export const rate = (n) => (n ? (n >= 100 ? n.toFixed(0) : n.toFixed(2)) : "0") + "/s";
// The last characters: a UUIDv7 starts with its timestamp, so jobs made together share their first 8.
export const shortId = (id) => (id ? id.slice(-8) : "");

export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return date.toISOString().replace("T", " ").slice(0, 19);
}

export function ago(iso) {
  if (!iso) return "–";
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  const future = seconds < 0;
  const s = Math.abs(seconds);
  let text;
  if (s < 60) text = Math.round(s) + "s";
  else if (s < 3600) text = Math.round(s / 60) + "m";
  else if (s < 86400) text = Math.round(s / 3600) + "h";
  else text = Math.round(s / 86400) + "d";
  return future ? "in " + text : text + " ago";
}

export function duration(seconds) {
  const d = Math.floor(seconds / 86400), hh = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60), s = Math.floor(seconds % 60);
  return (d ? d + "d " : "") + (d || hh ? hh + "h " : "") + m + "m " + s + "s";
}

export function badge(text, kind) {
  return h("span", { class: "badge " + (kind || text) }, text);
}

export function jobLink(id, label) {
  return h("a", { href: "#/jobs/" + id, class: "mono", title: id }, label || shortId(id));
}

export function json(value, error) {
  return h("pre", { class: "json" + (error ? " error" : "") }, JSON.stringify(value, null, 2));
}

export function field(label, input, extra) {
  return h("label", { class: "field" + (extra ? " " + extra : "") }, h("span", null, label), input);
}

export function checkField(label, input) {
  return h("label", { class: "field check" }, input, h("span", null, label));
}

export function select(name, options, value) {
  return h("select", { name },
    options.map(([v, label]) => h("option", { value: v, selected: v === value ? true : null }, label)));
}

export function table(headers, rows, emptyText) {
  if (!rows.length) return h("div", { class: "empty" }, emptyText || "Nothing here yet.");
  return h("div", { class: "table-wrap" }, h("table", null,
    h("thead", null, h("tr", null, headers.map((x) => {
      const [label, cls] = Array.isArray(x) ? x : [x, null];
      return h("th", { class: cls }, label);
    }))),
    h("tbody", null, rows)));
}

export function toast(message, isError) {
  const box = document.getElementById("toasts");
  const el = h("div", { class: "toast" + (isError ? " error" : ""), role: "status" }, message);
  box.append(el);
  setTimeout(() => el.remove(), isError ? 6000 : 3000);
}

function modal(title, text, body, buttons) {
  return new Promise((resolve) => {
    const back = h("div", { class: "modal-back" });
    const close = (value) => { back.remove(); resolve(value); };
    const box = h("div", { class: "modal", role: "dialog", "aria-modal": "true" },
      h("h2", null, title), text ? h("p", null, text) : null, body,
      h("div", { class: "buttons" }, buttons(close)));
    back.append(box);
    back.addEventListener("keydown", (ev) => { if (ev.key === "Escape") close(null); });
    document.body.append(back);
    const focus = box.querySelector("input") || box.querySelector(".btn:last-child");
    if (focus) focus.focus();
  });
}

export function confirmAction(title, text, label) {
  return modal(title, text, null, (close) => [
    h("button", { class: "btn secondary", onclick: () => close(false) }, "Cancel"),
    h("button", { class: "btn", id: "confirm-ok", onclick: () => close(true) }, label || "Confirm"),
  ]).then((value) => value === true);
}

export function askToken(message) {
  const input = h("input", { type: "password", id: "token-input", placeholder: "Bearer token", autocomplete: "off" });
  const submit = (close) => () => close(input.value.trim() || null);
  return modal("Sign in", message + ". Enter an API token; it is kept for this browser tab only.",
    h("form", { class: "form stack", onsubmit: (ev) => ev.preventDefault() }, input),
    (close) => {
      input.addEventListener("keydown", (ev) => { if (ev.key === "Enter") submit(close)(); });
      return [
        h("button", { class: "btn secondary", onclick: () => close(null) }, "Cancel"),
        h("button", { class: "btn", id: "token-submit", onclick: submit(close) }, "Sign in"),
      ];
    });
}

// Run an action from a button: disable it meanwhile, report the outcome as a toast.
export async function act(button, action, success) {
  if (button) button.disabled = true;
  try {
    const result = await action();
    if (success) toast(typeof success === "function" ? success(result) : success);
    return result;
  } catch (err) {
    toast(err.message, true);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}
