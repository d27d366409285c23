// What several pages read: the namespaces the key sees, the state of their clones, and a
// picker to choose one.

import { listAll } from "./api.js";
import { h } from "./dom.js";

export const KINDS = [
  { kind: "bucket", plural: "buckets", title: "Buckets" },
  { kind: "collection", plural: "collections", title: "Collections" },
  { kind: "retriever", plural: "retrievers", title: "Retrievers" },
  { kind: "taxonomy", plural: "taxonomies", title: "Taxonomies" },
];

export function loadNamespaces() {
  return listAll("/v1/namespaces/list");
}

// The namespace clones still running or failed, by task ID: every other clone is done.
export async function unfinishedClones() {
  const body = { task_type: "namespace_clone", status: ["PENDING", "IN_PROGRESS", "FAILED"] };
  const tasks = await listAll("/v1/tasks/list", { body });
  return new Map(tasks.map((task) => [task.task_id, task]));
}

// A namespace's state: ready, cloning (with how far) or failed.
export function statusOf(namespace, unfinished) {
  const task = namespace.clone_task_id ? unfinished.get(namespace.clone_task_id) : undefined;
  if (!task) return { state: "ready", label: "ready" };
  if (task.status === "FAILED") return { state: "failed", label: "clone failed" };
  const percent = Number((task.progress && task.progress.percent) || 0);
  return { state: "cloning", label: `cloning ${Math.floor(percent)}%` };
}

export function byId(namespaces) {
  return new Map(namespaces.map((ns) => [ns.namespace_id, ns]));
}

export function namespaceName(namespaces, id) {
  const found = namespaces.get(id);
  return found ? found.namespace_name : id;
}

// A <select> of the namespaces; `choose(name)` is called with the one picked.
export function namespacePicker(namespaces, selected, choose, attrs = {}) {
  const options = namespaces.map((ns) =>
    h(
      "option",
      { value: ns.namespace_name, selected: ns.namespace_name === selected },
      ns.namespace_name,
    ),
  );
  const select = h("select", attrs, options);
  select.addEventListener("change", () => choose(select.value));
  return select;
}

// The namespace named in the route, or the first one the key sees.
export function chosen(namespaces, name) {
  return namespaces.find((ns) => ns.namespace_name === name || ns.namespace_id === name)
    || namespaces[0];
}
