// The dead-letter queue (admin keys): the commands the processor rejected, with why, and
// a redrive of those picked (GET /v1/dlq, POST /v1/dlq/redrive).

import { get, post, totalOf } from "./api.js";
import { errorMessage, h, json, link, message, route, table, when } from "./dom.js";

const LIMIT = 50;
const CODES = [
  "message_too_large", "not_utf8", "invalid_json", "too_deeply_nested", "invalid_envelope",
  "unknown_command_type", "validation_error", "command_id_reused", "not_found", "wrong_kind",
  "duplicate_name", "immutable_field", "invalid_reference", "invalid_include_resources",
  "internal_error",
];

function unavailable(error) {
  if (error.status === 404) {
    return message("info unavailable",
      "The dead-letter queue is not available from this API: GET /v1/dlq answered 404.");
  }
  if (error.status === 403) {
    return message("info forbidden", "Listing and redriving dead letters takes an admin key.");
  }
  return errorMessage(error);
}

function outcomes(results) {
  const columns = [
    { title: "Offset", class: "number", cell: (r) => r.dlq_offset },
    { title: "Command", class: "id", cell: (r) => r.command_id || "" },
    { title: "Outcome", cell: (r) => h("span", { class: `outcome ${r.outcome}` }, r.outcome) },
    { title: "Message", cell: (r) => r.message || "" },
  ];
  return h("section", { class: "panel redriven" }, h("h3", {}, "Redriven"),
    table(columns, results, () => ({ class: "outcome-row" })));
}

function filters(code, commandType) {
  const codeInput = h("input", { id: "dlq-code", list: "dlq-codes", value: code,
    placeholder: "any code", "aria-label": "code" });
  const typeInput = h("input", { id: "dlq-type", value: commandType,
    placeholder: "any command type", "aria-label": "command type" });
  const form = h(
    "form",
    { class: "toolbar" },
    h("label", {}, "Code ", codeInput),
    h("datalist", { id: "dlq-codes" }, CODES.map((c) => h("option", { value: c }))),
    " ",
    h("label", {}, "Command type ", typeInput),
    " ",
    h("button", { type: "submit" }, "Filter"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = route("dlq", null, { code: codeInput.value, command_type: typeInput.value });
  });
  return form;
}

function pager(offset, shown, total, code, commandType) {
  const at = (o) => route("dlq", null, { code, command_type: commandType, offset: o || undefined });
  return h(
    "p",
    { class: "pager" },
    total ? `${offset + 1}–${offset + shown} of ${total}` : "0 of 0",
    offset > 0 ? [" · ", link(at(Math.max(0, offset - LIMIT)), "newer page")] : "",
    offset + shown < total ? [" · ", link(at(offset + LIMIT), "next page")] : "",
  );
}

function entries(results, picked, changed) {
  const boxes = [];
  const all = h("input", { type: "checkbox", "aria-label": "select all" });
  all.addEventListener("change", () => {
    for (const box of boxes) box.checked = all.checked;
    changed();
  });
  const pick = (entry) => {
    const box = h("input", { type: "checkbox", class: "pick", "aria-label": "select",
      dataset: { offset: entry.dlq_offset } });
    box.addEventListener("change", changed);
    boxes.push(box);
    picked.set(entry.dlq_offset, box);
    return box;
  };
  const columns = [
    { title: all, cell: pick },
    { title: "Offset", class: "number", cell: (e) => e.dlq_offset },
    { title: "Rejected", cell: (e) => when(e.rejected_at) },
    { title: "Command type", cell: (e) => e.command_type || "" },
    { title: "Code", cell: (e) => h("span", { class: "code" }, e.code) },
    { title: "Message", cell: (e) => e.message },
    { title: "Field", cell: (e) => e.field || "" },
    { title: "Command ID", class: "id", cell: (e) => e.command_id || "" },
    { title: "Applied", cell: (e) => (e.applied ? "yes" : "no") },
    { title: "Command", cell: (e) => (e.command
      ? h("details", {}, h("summary", {}, "show"), json(e.command)) : "unreadable") },
  ];
  const rowAttrs = (e) => ({ class: "dead-letter", dataset: { offset: e.dlq_offset } });
  return table(columns, results, rowAttrs, { class: "dlq" });
}

export async function render(view, { query }) {
  view.append(h("h2", {}, "Dead letters"));
  const code = query.get("code") || "";
  const commandType = query.get("command_type") || "";
  const offset = Math.max(0, Number.parseInt(query.get("offset") || "0", 10) || 0);
  view.append(filters(code, commandType));
  const results = h("div", { class: "redrive-results" });
  const list = h("div", { class: "dlq-list" });
  view.append(results, list);

  const load = async () => {
    let page;
    try {
      page = await get("/v1/dlq", { query: { code, command_type: commandType, limit: LIMIT, offset } });
    } catch (error) {
      list.replaceChildren(unavailable(error));
      return;
    }
    const picked = new Map();
    const redrive = h("button", { type: "button", id: "redrive", disabled: true },
      "Redrive selected");
    const changed = () => {
      redrive.disabled = ![...picked.values()].some((box) => box.checked);
    };
    redrive.addEventListener("click", async () => {
      const offsets = [...picked].filter(([, box]) => box.checked).map(([o]) => o);
      redrive.disabled = true;
      try {
        const answer = await post("/v1/dlq/redrive", { dlq_offsets: offsets });
        results.replaceChildren(outcomes(answer.results));
        await load();
      } catch (error) {
        results.replaceChildren(errorMessage(error));
        changed();
      }
    });
    list.replaceChildren(
      h("p", { class: "toolbar" }, redrive),
      entries(page.results, picked, changed),
      page.results.length ? "" : h("p", { class: "empty" }, "No dead letters."),
      pager(offset, page.results.length, totalOf(page), code, commandType),
    );
  };
  await load();
}
