// Lineage: the namespaces as a graph of their clones (source -> clone), drawn as SVG; a
// namespace picked in it shows its clone events from GET /v1/lineage/{id}.

import { get } from "./api.js";
import { errorMessage, h, link, route, svg, table, when } from "./dom.js";
import { byId, loadNamespaces, namespaceName, statusOf, unfinishedClones } from "./data.js";

const NODE = { width: 220, height: 46 };
const STEP = { x: 280, y: 64 };
const MARGIN = 20;

// Where each namespace goes: clones to the right of their source (one column per clone
// generation), each subtree on rows of its own, a source level with its clones' middle.
export function layout(namespaces) {
  const ids = new Set(namespaces.map((ns) => ns.namespace_id));
  const children = new Map();
  const roots = [];
  for (const ns of namespaces) {
    const source = ns.source_namespace_id;
    if (source && ids.has(source) && source !== ns.namespace_id) {
      if (!children.has(source)) children.set(source, []);
      children.get(source).push(ns);
    } else {
      roots.push(ns);
    }
  }
  const place = new Map();
  let rows = 0;
  let columns = 1;
  const visit = (ns, depth) => {
    place.set(ns.namespace_id, null); // seen: a malformed cycle cannot loop
    const clones = (children.get(ns.namespace_id) || []).filter((c) => !place.has(c.namespace_id));
    let row;
    if (clones.length === 0) {
      row = rows;
      rows += 1;
    } else {
      for (const clone of clones) visit(clone, depth + 1);
      const first = place.get(clones[0].namespace_id);
      const last = place.get(clones[clones.length - 1].namespace_id);
      row = (first.row + last.row) / 2;
    }
    columns = Math.max(columns, depth + 1);
    place.set(ns.namespace_id, { depth, row });
  };
  for (const ns of roots) visit(ns, 0);
  for (const ns of namespaces) if (!place.has(ns.namespace_id)) visit(ns, 0);
  const edges = namespaces
    .filter((ns) => place.get(ns.source_namespace_id))
    .map((ns) => ({ source: ns.source_namespace_id, clone: ns.namespace_id }));
  return { place, edges, rows, columns };
}

function corner({ depth, row }) {
  return { x: MARGIN + depth * STEP.x, y: MARGIN + row * STEP.y };
}

function clip(text, most) {
  return text.length > most ? `${text.slice(0, most - 1)}…` : text;
}

function edgePath(from, to) {
  const x1 = from.x + NODE.width;
  const y1 = from.y + NODE.height / 2;
  const x2 = to.x - 6;
  const y2 = to.y + NODE.height / 2;
  const bend = (x2 - x1) / 2;
  return `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`;
}

function node(ns, at, status, selected) {
  const classes = ["node", `status-${status.state}`];
  if (ns.namespace_name === selected) classes.push("selected");
  const group = svg(
    "g",
    {
      class: classes.join(" "),
      transform: `translate(${at.x} ${at.y})`,
      tabindex: 0,
      role: "link",
      dataset: { namespaceId: ns.namespace_id, name: ns.namespace_name },
    },
    svg("title", {}, `${ns.namespace_name} (${ns.namespace_id})`),
    svg("rect", { width: NODE.width, height: NODE.height, rx: 6 }),
    svg("text", { x: 10, y: 19, class: "name" }, clip(ns.namespace_name, 28)),
    svg("text", { x: 10, y: 36, class: "detail" }, status.label),
  );
  const open = () => {
    location.hash = route("lineage", ns.namespace_name);
  };
  group.addEventListener("click", open);
  group.addEventListener("keydown", (event) => event.key === "Enter" && open());
  return group;
}

export function graph(namespaces, unfinished, selected) {
  const { place, edges, rows, columns } = layout(namespaces);
  const width = MARGIN * 2 + (columns - 1) * STEP.x + NODE.width;
  const height = MARGIN * 2 + Math.max(rows - 1, 0) * STEP.y + NODE.height;
  const arrow = svg(
    "marker",
    { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 10, markerHeight: 10,
      markerUnits: "userSpaceOnUse", orient: "auto" },
    svg("path", { d: "M 0 0 L 10 5 L 0 10 z" }),
  );
  const lines = edges.map((edge) =>
    svg("path", {
      class: "edge",
      d: edgePath(corner(place.get(edge.source)), corner(place.get(edge.clone))),
      "marker-end": "url(#arrow)",
      dataset: { source: edge.source, clone: edge.clone },
    }),
  );
  const nodes = namespaces.map((ns) =>
    node(ns, corner(place.get(ns.namespace_id)), statusOf(ns, unfinished), selected),
  );
  return svg(
    "svg",
    { class: "lineage", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "namespaces and their clones" },
    svg("defs", {}, arrow),
    svg("g", { class: "edges" }, lines),
    svg("g", { class: "nodes" }, nodes),
  );
}

function cloneEvents(edges, names) {
  const columns = [
    { title: "Source", cell: (e) => namespaceName(names, e.source_id) },
    { title: "Clone", cell: (e) => namespaceName(names, e.clone_id) },
    { title: "Position", class: "number", cell: (e) => e.position },
    { title: "When", cell: (e) => when(e.occurred_at) },
    { title: "By", cell: (e) => e.actor || "" },
  ];
  return table(columns, edges, () => ({ class: "clone-event" }));
}

async function details(panel, ns, names, drawn) {
  panel.append(
    h("h3", {}, ns.namespace_name),
    h(
      "p",
      {},
      h("span", { class: "id" }, ns.namespace_id),
      " · ",
      link(route("resources", ns.namespace_name), "resources"),
      " · ",
      link(route("refs", ns.namespace_name), "refs"),
    ),
  );
  try {
    const lineage = await get(`/v1/lineage/${encodeURIComponent(ns.namespace_id)}`);
    const related = new Set([ns.namespace_id]);
    for (const e of [...lineage.ancestors, ...lineage.descendants]) {
      related.add(e.source_id);
      related.add(e.clone_id);
    }
    for (const g of drawn.querySelectorAll("g.node")) {
      g.classList.toggle("related", related.has(g.dataset.namespaceId));
    }
    for (const path of drawn.querySelectorAll("path.edge")) {
      const on = related.has(path.dataset.source) && related.has(path.dataset.clone);
      path.classList.toggle("related", on);
    }
    panel.append(
      h("h4", {}, "Cloned from"),
      lineage.ancestors.length ? cloneEvents(lineage.ancestors, names) : h("p", {}, "an original"),
      h("h4", {}, "Cloned into"),
      lineage.descendants.length ? cloneEvents(lineage.descendants, names) : h("p", {}, "no clones"),
    );
  } catch (error) {
    panel.append(errorMessage(error));
  }
}

export async function render(view, { argument }) {
  view.append(h("h2", {}, "Lineage"));
  const [namespaces, unfinished] = await Promise.all([loadNamespaces(), unfinishedClones()]);
  if (!namespaces.length) {
    view.append(h("p", {}, "This key sees no namespaces yet."));
    return;
  }
  view.append(h("p", { class: "hint" }, "Each arrow goes from a namespace to a clone of it."));
  const drawn = graph(namespaces, unfinished, argument);
  view.append(h("div", { class: "graph" }, drawn));
  const selected = namespaces.find((ns) => ns.namespace_name === argument);
  const panel = h("section", { class: "panel lineage-details" });
  view.append(panel);
  if (selected) await details(panel, selected, byId(namespaces), drawn);
  else panel.append(h("p", { class: "hint" }, "Pick a namespace in the graph."));
}
