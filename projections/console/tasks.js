// Tasks, live: deep copies (namespace clones), reprocessing and taxonomy runs, newest
// first, each with a progress bar. The list is read again every few seconds (POST
// /v1/tasks/list) and every running task every second (GET /v1/tasks/{id}).

import { get, post, totalOf } from "./api.js";
import { count, errorMessage, h, progressBar, when } from "./dom.js";
import { byId, loadNamespaces, namespaceName } from "./data.js";

const SHOWN = 50;
const RUNNING = new Set(["PENDING", "IN_PROGRESS"]);
const FILTERS = {
  all: null,
  running: ["PENDING", "IN_PROGRESS"],
  completed: ["COMPLETED"],
  failed: ["FAILED"],
};

function progressDetail(progress) {
  const p = progress || {};
  if (p.points_total !== undefined) {
    return `${count(p.points_copied)} / ${count(p.points_total)} points copied`;
  }
  if (p.documents_total !== undefined) {
    return `${count(p.documents_done)} / ${count(p.documents_total)} documents`;
  }
  return "";
}

function where(task, names) {
  const source = task.source_namespace_id || task.namespace_id;
  if (task.target_namespace_id && task.target_namespace_id !== source) {
    return `${namespaceName(names, source)} → ${namespaceName(names, task.target_namespace_id)}`;
  }
  return namespaceName(names, task.namespace_id);
}

function cells(task, names) {
  const progress = task.progress || {};
  return [
    h("td", { class: "id" }, task.task_id),
    h("td", {}, task.operation || task.task_type),
    h("td", {}, where(task, names)),
    h("td", {}, h("span", { class: `status ${task.status.toLowerCase()}` }, task.status)),
    h(
      "td",
      { class: "progress-cell" },
      progressBar(progress.percent, `progress of ${task.task_id}`),
      h("span", { class: "progress-detail" }, progressDetail(progress)),
      task.error ? h("span", { class: "task-error" }, task.error) : "",
    ),
    h("td", {}, when(task.created_at)),
    h("td", {}, when(task.updated_at)),
  ];
}

// The newest tasks: the list is oldest first, so read its last page.
async function newest(statuses) {
  const body = statuses ? { status: statuses } : {};
  const total = totalOf(await post("/v1/tasks/list", { ...body, limit: 1 }));
  const offset = Math.max(0, total - SHOWN);
  const page = await post("/v1/tasks/list", { ...body, limit: SHOWN, offset });
  return page.results.reverse();
}

export async function render(view, { every }) {
  view.append(h("h2", {}, "Tasks"));
  let names = byId(await loadNamespaces());
  const rows = new Map(); // task ID -> its <tr>
  const tasks = new Map(); // task ID -> the task as last read
  const filter = h(
    "select",
    { id: "task-filter", "aria-label": "which tasks" },
    Object.keys(FILTERS).map((name) => h("option", { value: name }, name)),
  );
  const problem = h("div", { class: "problem" });
  const body = h("tbody");
  const head = ["Task", "Operation", "Namespace", "Status", "Progress", "Started", "Updated"];
  view.append(
    h("p", { class: "toolbar" }, h("label", {}, "Show ", filter)),
    problem,
    h("table", { class: "tasks" }, h("thead", {}, h("tr", {}, head.map((t) => h("th", {}, t)))),
      body),
  );

  const show = (task) => {
    tasks.set(task.task_id, task);
    let row = rows.get(task.task_id);
    if (!row) {
      row = h("tr", { class: "task", dataset: { taskId: task.task_id } });
      rows.set(task.task_id, row);
    }
    row.dataset.status = task.status;
    row.replaceChildren(...cells(task, names));
    return row;
  };
  const list = async () => {
    try {
      const found = await newest(FILTERS[filter.value]);
      const unknown = (id) => id && !names.has(id);
      if (found.some((t) => unknown(t.namespace_id) || unknown(t.target_namespace_id))) {
        names = byId(await loadNamespaces());
      }
      body.replaceChildren(...found.map(show));
      problem.replaceChildren();
    } catch (error) {
      problem.replaceChildren(errorMessage(error));
    }
  };
  const follow = async () => {
    const running = [...tasks.values()].filter((t) => RUNNING.has(t.status));
    for (const task of running) {
      try {
        show(await get(`/v1/tasks/${encodeURIComponent(task.task_id)}`));
      } catch (error) {
        problem.replaceChildren(errorMessage(error));
      }
    }
  };
  filter.addEventListener("change", list);
  await list();
  every(1000, follow);
  every(3000, list);
}
