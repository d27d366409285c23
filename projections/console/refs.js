// Refs and their history as a timeline: creations, moves, promotions with the metrics
// they were decided on, refused promotions with the rules they broke, rollbacks. An admin
// key may roll a ref back to an earlier entry, with the API's own command
// (POST /v1/refs/{name}/rollback {"position": ...}).

import { get, listAll, post } from "./api.js";
import { errorMessage, h, link, loading, route, table, when } from "./dom.js";
import { chosen, loadNamespaces, namespacePicker } from "./data.js";

const ACTIONS = {
  create: "created",
  move: "moved",
  promote: "promoted",
  promotion_refused: "promotion refused",
  rollback: "rolled back",
};
const PLURAL = {
  namespace: "namespaces",
  bucket: "buckets",
  collection: "collections",
  retriever: "retrievers",
  taxonomy: "taxonomies",
};

// A target as "name (ID)", its name read once per ID in the namespace it lives in.
function targets(kind, namespaceId, homes) {
  const names = new Map();
  const nameOf = (id, home) => {
    if (!names.has(id)) {
      const path = `/v1/${PLURAL[kind]}/${encodeURIComponent(id)}`;
      const where = home || homes.get(id) || namespaceId;
      const options = kind === "namespace" ? {} : { namespace: where };
      names.set(id, get(path, options).then((row) => row[`${kind}_name`]).catch(() => null));
    }
    return names.get(id);
  };
  return (id, home) => {
    const label = h("span", { class: "target", dataset: { targetId: id } }, id);
    nameOf(id, home).then((name) => {
      if (name) label.replaceChildren(h("strong", {}, name), " ", h("span", { class: "id" }, id));
    });
    return label;
  };
}

function number(value) {
  if (typeof value !== "number") return "";
  return Number.isInteger(value) ? String(value) : value.toFixed(3);
}

function change(candidate, baseline) {
  if (typeof candidate !== "number" || typeof baseline !== "number" || baseline === 0) return "";
  const percent = ((candidate - baseline) / baseline) * 100;
  return `${percent >= 0 ? "+" : ""}${percent.toFixed(1)}%`;
}

// The metrics an evaluation measured: the candidate's, and the target it was compared with.
async function evaluation(box, evaluationId) {
  box.replaceChildren(loading("Reading the evaluation…"));
  try {
    const found = await get(`/v1/evaluations/${encodeURIComponent(evaluationId)}`);
    const [candidate, baseline] = found.runs;
    const metrics = Object.keys(candidate ? candidate.metrics : {}).sort();
    const columns = [
      { title: "Metric", cell: (m) => m },
      { title: "Candidate", class: "number", cell: (m) => number(candidate.metrics[m]) },
    ];
    if (baseline) {
      columns.push(
        { title: "Then current", class: "number", cell: (m) => number(baseline.metrics[m]) },
        { title: "Change", class: "number",
          cell: (m) => change(candidate.metrics[m], baseline.metrics[m]) },
      );
    }
    box.replaceChildren(
      h("p", { class: "hint" }, `Evaluation ${found.evaluation_id} at k=${found.k}`),
      table(columns, metrics, () => ({ class: "metric" }), { class: "metrics" }),
    );
  } catch (error) {
    box.replaceChildren(errorMessage(error));
  }
}

function gate(entry) {
  if (entry.action === "promote") return h("p", { class: "gate passed" }, "Gate passed");
  if (entry.action !== "promotion_refused") return "";
  const failures = (entry.detail && entry.detail.failures) || [];
  return h(
    "div",
    { class: "gate failed" },
    h("p", {}, "Gate failed:"),
    h("ul", {}, failures.map((f) => h("li", {}, f.message || f.metric))),
  );
}

function rolledBackTo(entry) {
  const to = entry.detail && entry.detail.rolled_back_to;
  if (!to) return "";
  const how = to.position !== undefined ? `position ${to.position}`
    : to.time !== undefined ? `the time ${to.time}` : "the previous target";
  return h("p", { class: "rolled-back-to" }, `Back to the target in force at ${how}.`);
}

function rollbackControl(ref, entry, context, problem, done) {
  const control = h("span", { class: "rollback-control" });
  const start = h("button", { type: "button", class: "rollback-button" }, "Roll back to this");
  start.addEventListener("click", () => {
    const reason = h("input", { type: "text", class: "rollback-reason",
      placeholder: "why (optional)", "aria-label": "reason" });
    const confirm = h("button", { type: "button", class: "confirm-rollback danger" },
      `Roll ${ref.ref_name} back`);
    const cancel = h("button", { type: "button" }, "Cancel");
    cancel.addEventListener("click", () => control.replaceChildren(start));
    confirm.addEventListener("click", async () => {
      confirm.disabled = true;
      try {
        const path = `/v1/refs/${encodeURIComponent(ref.ref_name)}/rollback`;
        const body = { position: entry.position, reason: reason.value };
        done(await post(path, body, { namespace: context.namespaceId }));
      } catch (error) {
        problem.replaceChildren(errorMessage(error));
        confirm.disabled = false;
      }
    });
    control.replaceChildren(reason, confirm, cancel);
  });
  control.append(start);
  return control;
}

function timelineEntry(ref, entry, inForce, context, label, problem, done) {
  const refused = entry.action === "promotion_refused";
  const box = h("div", { class: "evaluation" });
  if (entry.evaluation_id) evaluation(box, entry.evaluation_id);
  const canRollBack = context.role !== "scoped" && !refused && entry.target_id !== ref.target_id;
  return h(
    "li",
    { class: `entry ${entry.action}`, dataset: { action: entry.action, position: entry.position } },
    h(
      "div",
      { class: "entry-head" },
      h("span", { class: `badge ${entry.action}` }, ACTIONS[entry.action] || entry.action),
      refused ? " candidate " : " → ",
      label(entry.target_id, entry.target_namespace_id),
      inForce ? h("span", { class: "in-force" }, "current") : "",
      canRollBack ? rollbackControl(ref, entry, context, problem, done) : "",
    ),
    h(
      "p",
      { class: "entry-meta" },
      `position ${entry.position} · ${when(entry.occurred_at)} · by ${entry.actor}`,
      entry.previous_target_id && !refused ? [" · was ", label(entry.previous_target_id)] : "",
      refused ? [" · stayed on ", label(entry.previous_target_id)] : "",
    ),
    entry.reason ? h("p", { class: "reason" }, entry.reason) : "",
    rolledBackTo(entry),
    gate(entry),
    box,
  );
}

function fill(card, ref, context) {
  const homes = new Map(
    ref.history.filter((e) => e.target_namespace_id).map((e) => [e.target_id, e.target_namespace_id]),
  );
  const label = targets(ref.target_kind, context.namespaceId, homes);
  const problem = h("div", { class: "problem" });
  const done = (updated) => fill(card, updated, context);
  const history = [...ref.history].reverse(); // newest first
  const inForce = history.find((e) => e.action !== "promotion_refused");
  card.replaceChildren(
    h("h3", {}, ref.ref_name, " ", h("span", { class: "kind" }, ref.target_kind)),
    h("p", { class: "current-target" }, "points at ", label(ref.target_id, ref.target_namespace_id)),
    problem,
    h(
      "ol",
      { class: "timeline" },
      history.map((e) => timelineEntry(ref, e, e === inForce, context, label, problem, done)),
    ),
  );
}

export async function render(view, { argument, role }) {
  view.append(h("h2", {}, "Refs"));
  const namespaces = await loadNamespaces();
  const ns = chosen(namespaces, argument);
  if (!ns) {
    view.append(h("p", {}, "This key sees no namespaces yet."));
    return;
  }
  const picker = namespacePicker(namespaces, ns.namespace_name, (name) => {
    location.hash = route("refs", name);
  }, { id: "namespace-picker", "aria-label": "namespace" });
  view.append(h("p", { class: "toolbar" }, h("label", {}, "Namespace ", picker)));
  if (role === "scoped") {
    view.append(h("p", { class: "hint" }, "Rolling a ref back takes an admin key."));
  }
  const refs = await listAll("/v1/refs/list", { namespace: ns.namespace_id });
  if (!refs.length) {
    view.append(h("p", {}, "No refs in this namespace. "),
      link(route("resources", ns.namespace_name), "Its resources"));
    return;
  }
  const context = { namespaceId: ns.namespace_id, role };
  for (const ref of refs) {
    const card = h("article", { class: "ref", dataset: { ref: ref.ref_name } });
    fill(card, ref, context);
    view.append(card);
  }
}
