// A namespace's resources, kind by kind; each opens onto its lineage (GET /v1/lineage/{id})
// and its events (GET /v1/audit?resource_id=...).

import { get, listAll } from "./api.js";
import { bytes, count, errorMessage, h, json, loading, route, table, when } from "./dom.js";
import { KINDS, byId, chosen, loadNamespaces, namespaceName, namespacePicker } from "./data.js";

// What the summary line of each kind says besides its name.
const SUMMARY = {
  bucket: (r) => `${count(r.object_count)} objects, ${bytes(r.total_size_bytes)}`,
  collection: (r) => {
    const extractor = r.feature_extractor || {};
    return `${r.status} · ${extractor.feature_extractor_name}@${extractor.version} · vectors ${r.vector_mode}`;
  },
  retriever: (r) => `${(r.stages || []).length} stages over ${(r.collection_ids || []).length} collections`,
  taxonomy: (r) => `${(r.config || {}).taxonomy_type || ""}`,
};

function eventsTable(events) {
  const columns = [
    { title: "Position", class: "number", cell: (e) => e.position },
    { title: "Event", cell: (e) => h("span", { class: "event-type" }, e.type) },
    { title: "When", cell: (e) => when(e.occurred_at) },
    { title: "By", cell: (e) => e.actor || "" },
    { title: "Command", class: "id", cell: (e) => e.command_id || "" },
    { title: "Data", cell: (e) => h("details", {}, h("summary", {}, "data"), json(e.data)) },
  ];
  return table(columns, events, () => ({ class: "event" }), { class: "events" });
}

function lineageList(edges, names, side) {
  if (!edges.length) return h("p", {}, side === "ancestors" ? "an original" : "no clones");
  return h(
    "ul",
    { class: `lineage-list ${side}` },
    edges.map((e) =>
      h(
        "li",
        {},
        h("span", { class: "id" }, e.source_id),
        " → ",
        h("span", { class: "id" }, e.clone_id),
        ` (${e.kind} in ${namespaceName(names, e.namespace_id)}, position ${e.position}, `,
        `${when(e.occurred_at)}${e.actor ? `, by ${e.actor}` : ""})`,
      ),
    ),
  );
}

// The lineage and the events of one resource, read when it is first opened.
async function history(body, id, names) {
  body.replaceChildren(loading());
  try {
    const [lineage, audit] = await Promise.all([
      get(`/v1/lineage/${encodeURIComponent(id)}`),
      get("/v1/audit", { query: { resource_id: id, limit: 200 } }),
    ]);
    body.replaceChildren(
      h("h4", {}, "Lineage"),
      h("div", { class: "lineage" },
        h("p", {}, "Cloned from:"), lineageList(lineage.ancestors, names, "ancestors"),
        h("p", {}, "Cloned into:"), lineageList(lineage.descendants, names, "descendants")),
      h("h4", {}, `Events (${audit.results.length})`),
      eventsTable(audit.results),
    );
  } catch (error) {
    body.replaceChildren(errorMessage(error));
  }
}

function resource(kind, row, names) {
  const id = row[`${kind.kind}_id`];
  const source = row[`source_${kind.kind}_id`];
  const body = h("div", { class: "history" });
  const item = h(
    "details",
    { class: "resource", dataset: { kind: kind.kind, id, name: row[`${kind.kind}_name`] } },
    h(
      "summary",
      {},
      h("strong", {}, row[`${kind.kind}_name`]),
      " ",
      h("span", { class: "id" }, id),
      " · ",
      SUMMARY[kind.kind](row),
      source ? h("span", { class: "cloned" }, ` · cloned from ${source}`) : "",
    ),
    body,
  );
  let read = false;
  item.addEventListener("toggle", () => {
    if (item.open && !read) {
      read = true;
      history(body, id, names);
    }
  });
  return item;
}

async function kindSection(kind, ns, names) {
  const section = h("section", { class: `kind ${kind.plural}` });
  try {
    const rows = await listAll(`/v1/${kind.plural}/list`, { namespace: ns.namespace_id });
    section.append(
      h("h3", {}, `${kind.title} (${rows.length})`),
      ...(rows.length ? rows.map((row) => resource(kind, row, names)) : [h("p", {}, "none")]),
    );
  } catch (error) {
    section.append(h("h3", {}, kind.title), errorMessage(error));
  }
  return section;
}

export async function render(view, { argument }) {
  view.append(h("h2", {}, "Resources"));
  const namespaces = await loadNamespaces();
  const ns = chosen(namespaces, argument);
  if (!ns) {
    view.append(h("p", {}, "This key sees no namespaces yet."));
    return;
  }
  const names = byId(namespaces);
  const picker = namespacePicker(namespaces, ns.namespace_name, (name) => {
    location.hash = route("resources", name);
  }, { id: "namespace-picker", "aria-label": "namespace" });
  const own = h("div", { class: "history" });
  const events = h("details", { class: "resource namespace-events", dataset: { id: ns.namespace_id } },
    h("summary", {}, "The namespace's own lineage and events"), own);
  events.addEventListener("toggle", () => events.open && !own.childElementCount
    && history(own, ns.namespace_id, names));
  view.append(
    h("p", { class: "toolbar" }, h("label", {}, "Namespace ", picker)),
    h(
      "p",
      { class: "namespace-info" },
      h("span", { class: "id" }, ns.namespace_id),
      ns.description ? ` · ${ns.description}` : "",
      ns.source_namespace_id ? ` · cloned from ${namespaceName(names, ns.source_namespace_id)}` : "",
      ` · created ${when(ns.created_at)}`,
    ),
    events,
  );
  const sections = await Promise.all(KINDS.map((kind) => kindSection(kind, ns, names)));
  view.append(...sections);
}
