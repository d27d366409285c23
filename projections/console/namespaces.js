// Environments: every namespace the key sees, what it was cloned from, its state and its
// size (resources, bucket objects and their bytes).

import { countOf, listAll } from "./api.js";
import { bytes, count, h, inPool, link, route, table, when } from "./dom.js";
import { byId, loadNamespaces, namespaceName, statusOf, unfinishedClones } from "./data.js";

const SIZES = [
  { key: "buckets", title: "Buckets" },
  { key: "objects", title: "Objects" },
  { key: "size", title: "Size" },
  { key: "collections", title: "Collections" },
  { key: "retrievers", title: "Retrievers" },
  { key: "taxonomies", title: "Taxonomies" },
  { key: "refs", title: "Refs" },
];

async function sizeOf(namespace) {
  const ns = namespace.namespace_id;
  const [buckets, collections, retrievers, taxonomies, refs] = await Promise.all([
    listAll("/v1/buckets/list", { namespace: ns }),
    countOf("/v1/collections/list", { namespace: ns }),
    countOf("/v1/retrievers/list", { namespace: ns }),
    countOf("/v1/taxonomies/list", { namespace: ns }),
    countOf("/v1/refs/list", { namespace: ns }),
  ]);
  const sum = (field) => buckets.reduce((total, b) => total + (b[field] || 0), 0);
  return {
    buckets: count(buckets.length),
    objects: count(sum("object_count")),
    size: bytes(sum("total_size_bytes")),
    collections: count(collections),
    retrievers: count(retrievers),
    taxonomies: count(taxonomies),
    refs: count(refs),
  };
}

export async function render(view) {
  view.append(h("h2", {}, "Environments"));
  const [namespaces, unfinished] = await Promise.all([loadNamespaces(), unfinishedClones()]);
  const names = byId(namespaces);
  view.append(
    h("p", { class: "hint" }, `${namespaces.length} namespaces this key sees.`),
  );
  const cells = new Map(namespaces.map((ns) => [ns.namespace_id, {}]));
  const sizeColumn = (size) => ({
    title: size.title,
    class: "number",
    cell: (ns) => {
      const cell = h("span", { class: `size ${size.key}` }, "…");
      cells.get(ns.namespace_id)[size.key] = cell;
      return cell;
    },
  });
  const columns = [
    {
      title: "Namespace",
      cell: (ns) => link(route("resources", ns.namespace_name), ns.namespace_name),
    },
    { title: "ID", class: "id", cell: (ns) => ns.namespace_id },
    {
      title: "Cloned from",
      cell: (ns) => (ns.source_namespace_id ? namespaceName(names, ns.source_namespace_id) : ""),
    },
    {
      title: "Status",
      cell: (ns) => {
        const status = statusOf(ns, unfinished);
        return h("span", { class: `status ${status.state}` }, status.label);
      },
    },
    ...SIZES.map(sizeColumn),
    { title: "Created", cell: (ns) => when(ns.created_at) },
    {
      title: "",
      cell: (ns) => [
        link(route("lineage", ns.namespace_name), "lineage"),
        " ",
        link(route("refs", ns.namespace_name), "refs"),
      ],
    },
  ];
  const rowAttrs = (ns) => ({
    class: "namespace",
    dataset: { namespaceId: ns.namespace_id, name: ns.namespace_name },
  });
  view.append(table(columns, namespaces, rowAttrs, { class: "namespaces" }));
  await inPool(namespaces, 4, async (ns) => {
    const mine = cells.get(ns.namespace_id);
    try {
      const size = await sizeOf(ns);
      for (const [key, cell] of Object.entries(mine)) cell.textContent = size[key];
    } catch (error) {
      for (const cell of Object.values(mine)) cell.textContent = "?";
      mine.buckets.title = error.message;
    }
  });
}
