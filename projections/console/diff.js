// Two environments side by side (GET /v1/diff): what only one has, what both have but
// configured differently (field by field), and how their documents moved apart.

import { get } from "./api.js";
import { errorMessage, h, route } from "./dom.js";
import { KINDS, loadNamespaces, namespacePicker } from "./data.js";

const ORDER = KINDS.map((k) => k.kind);

function value(v) {
  return h("code", {}, v === undefined ? "null" : JSON.stringify(v));
}

// One side of a changed resource: each differing field with this side's value.
function fields(diff, side) {
  const items = diff.fields.map((f) =>
    h("li", { class: f.config ? "config" : "" }, h("span", { class: "field" }, f.field), ": ",
      value(f[side])),
  );
  const docs = diff.documents;
  if (docs && docs.added + docs.removed + docs.changed > 0) {
    const text = side === "from"
      ? `documents: ${docs.removed} only here, ${docs.changed} changed`
      : `documents: ${docs.added} only here, ${docs.changed} changed`;
    items.push(h("li", { class: "documents" }, text));
  }
  return items.length ? h("ul", { class: "fields" }, items) : "";
}

function rowsOf(result) {
  const rows = [
    ...result.only_in_from.map((r) => ({ kind: r.kind, name: r.name, state: "only-from", r })),
    ...result.only_in_to.map((r) => ({ kind: r.kind, name: r.name, state: "only-to", r })),
    ...result.changed.map((r) => ({ kind: r.kind, name: r.name, state: "changed", r })),
    ...result.unchanged.map((r) => ({ kind: r.kind, name: r.name, state: "unchanged", r })),
  ];
  const rank = (row) => ORDER.indexOf(row.kind);
  return rows.sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}

function side(row, which) {
  const absent = (row.state === "only-from" && which === "to")
    || (row.state === "only-to" && which === "from");
  if (absent) return h("td", { class: `side ${which} absent` }, "—");
  return h(
    "td",
    { class: `side ${which}` },
    h("strong", {}, row.name),
    row.state === "changed" ? fields(row.r, which) : "",
  );
}

function sideBySide(result) {
  const head = h(
    "tr",
    {},
    h("th", {}, "Kind"),
    h("th", { class: "side from" }, result.from.namespace_name),
    h("th", { class: "side to" }, result.to.namespace_name),
  );
  const rows = rowsOf(result).map((row) =>
    h(
      "tr",
      { class: `diff-row ${row.state}`, dataset: { kind: row.kind, name: row.name, state: row.state } },
      h("td", { class: "kind" }, row.kind),
      side(row, "from"),
      side(row, "to"),
    ),
  );
  return h("table", { class: "diff" }, h("thead", {}, head), h("tbody", {}, rows));
}

export async function render(view, { query }) {
  view.append(h("h2", {}, "Diff"));
  const namespaces = await loadNamespaces();
  if (!namespaces.length) {
    view.append(h("p", {}, "This key sees no namespaces yet."));
    return;
  }
  const names = namespaces.map((ns) => ns.namespace_name);
  const from = query.get("from") || names[0];
  const to = query.get("to") || names[1] || names[0];
  const noop = () => {};
  const fromPicker = namespacePicker(namespaces, from, noop, { id: "diff-from", "aria-label": "from" });
  const toPicker = namespacePicker(namespaces, to, noop, { id: "diff-to", "aria-label": "to" });
  const compare = h("button", { type: "submit", id: "compare" }, "Compare");
  const form = h("form", { class: "toolbar" }, h("label", {}, "From ", fromPicker), " ",
    h("label", {}, "to ", toPicker), " ", compare);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = route("diff", null, { from: fromPicker.value, to: toPicker.value });
  });
  view.append(form);
  if (!query.get("from") || !query.get("to")) {
    view.append(h("p", { class: "hint" }, "Pick two namespaces and compare them."));
    return;
  }
  try {
    const result = await get("/v1/diff", { query: { from, to } });
    const s = result.summary;
    const hide = h("input", { type: "checkbox", id: "hide-unchanged" });
    const drawn = sideBySide(result);
    hide.addEventListener("change", () => drawn.classList.toggle("hide-unchanged", hide.checked));
    view.append(
      h("p", { class: "summary" },
        `${s.only_in_from} only in ${result.from.namespace_name} · ${s.only_in_to} only in `
        + `${result.to.namespace_name} · ${s.changed} changed · ${s.unchanged} the same`),
      h("p", { class: "toolbar" }, h("label", {}, hide, " hide what is the same")),
      drawn,
    );
  } catch (error) {
    view.append(errorMessage(error));
  }
}
