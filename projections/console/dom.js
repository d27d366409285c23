// Building the page. What the API answers is written by users, so it only ever enters the
// document as text (text nodes, textContent, attribute values), never as markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      for (const [key, data] of Object.entries(value)) element.dataset[key] = String(data);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

// h("a", {href: "#/tasks", class: "link"}, "Tasks"): an HTML element.
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// svg("rect", {x: 0, y: 0}): an SVG element.
export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

export function message(kind, text) {
  return h("p", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

// An error answer of the API as the user reads it: status, type and message.
export function errorMessage(error) {
  const status = error.status ? `${error.status} ${error.type}: ` : "";
  return message("error", `${status}${error.message}`);
}

export function loading(text = "Loading…") {
  return h("p", { class: "loading" }, text);
}

// A table: columns are {title, cell: row => text or node, class?}; rowAttrs(row) gives
// each <tr> its attributes.
export function table(columns, rows, rowAttrs = () => ({}), attrs = {}) {
  const head = h("tr", {}, columns.map((c) => h("th", { class: c.class }, c.title)));
  const body = rows.map((row) =>
    h("tr", rowAttrs(row), columns.map((c) => h("td", { class: c.class }, c.cell(row)))),
  );
  return h("table", attrs, h("thead", {}, head), h("tbody", {}, body));
}

// A progress bar with its percentage beside it.
export function progressBar(percent, label) {
  const value = Math.max(0, Math.min(100, Number(percent) || 0));
  const shown = Number.isInteger(value) ? String(value) : value.toFixed(1);
  return h(
    "span",
    { class: "progress" },
    h("progress", { max: 100, value, "aria-label": label || "progress" }),
    h("span", { class: "percent" }, `${shown}%`),
  );
}

export function link(href, text, attrs = {}) {
  return h("a", { ...attrs, href }, text);
}

export function route(page, argument, query) {
  let hash = `#/${page}`;
  if (argument) hash += `/${encodeURIComponent(argument)}`;
  const search = new URLSearchParams(
    Object.entries(query || {}).filter(([, value]) => value !== undefined && value !== ""),
  ).toString();
  return search ? `${hash}?${search}` : hash;
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

export function bytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function count(n) {
  return n === undefined || n === null ? "" : Number(n).toLocaleString();
}

// Run `work` on each item, at most `width` at a time (the API is one process).
export async function inPool(items, width, work) {
  const queue = [...items];
  const workers = Array.from({ length: Math.min(width, queue.length) }, async () => {
    while (queue.length) await work(queue.shift());
  });
  await Promise.all(workers);
}
