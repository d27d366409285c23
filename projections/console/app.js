// The console's shell: logging in and out, the navigation, and which page a #/route shows.

import { apiKey, forgetApiKey, get, keyId, keyRole, setApiKey } from "./api.js";
import { errorMessage, h, message } from "./dom.js";
import * as diff from "./diff.js";
import * as dlq from "./dlq.js";
import * as lineage from "./lineage.js";
import * as namespaces from "./namespaces.js";
import * as refs from "./refs.js";
import * as resources from "./resources.js";
import * as tasks from "./tasks.js";

const PAGES = {
  namespaces: { title: "Environments", module: namespaces },
  lineage: { title: "Lineage", module: lineage },
  resources: { title: "Resources", module: resources },
  tasks: { title: "Tasks", module: tasks },
  refs: { title: "Refs", module: refs },
  diff: { title: "Diff", module: diff },
  dlq: { title: "Dead letters", module: dlq },
};
const ROLES = { admin: "admin key", scoped: "scoped key", unknown: "" };

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
let role = "unknown";
let leave = () => {};

function decode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

// #/<page>/<argument>?<query>
function parse() {
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const [page, argument] = path.split("/").map(decode);
  return {
    page: PAGES[page] ? page : "namespaces",
    argument: argument || "",
    query: new URLSearchParams(search || ""),
  };
}

function loggedIn() {
  return !document.body.classList.contains("logged-out");
}

// Show the page the route names. What the page left running (its polling) stops when
// another page is shown.
async function show() {
  leave();
  let active = true;
  const timers = new Set();
  leave = () => {
    active = false;
    for (const timer of timers) clearTimeout(timer);
  };
  // Run `work` every `ms` milliseconds while the page is shown, one run at a time.
  const every = (ms, work) => {
    const tick = async () => {
      await work();
      if (active) timers.add(setTimeout(tick, ms));
    };
    timers.add(setTimeout(tick, ms));
  };
  const { page, argument, query } = parse();
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${PAGES[page].title} · envbranch`;
  const view = h("section", { class: `page ${page}`, id: `page-${page}`, dataset: { state: "loading" } });
  main.replaceChildren(view);
  try {
    await PAGES[page].module.render(view, { argument, query, role, every });
    view.dataset.state = "ready";
  } catch (error) {
    view.append(errorMessage(error));
    view.dataset.state = "failed";
  }
}

function showLogin(problem) {
  leave();
  leave = () => {};
  document.body.classList.add("logged-out");
  who.replaceChildren();
  const input = h("input", { type: "password", id: "api-key", name: "api-key",
    autocomplete: "off", required: true, placeholder: "eb_…" });
  const form = h(
    "form",
    { id: "login", class: "panel login" },
    h("h2", {}, "Log in"),
    h("p", {}, "Paste an API key. The console keeps it in this tab only, until you log out "
      + "or close the tab; it sees what the key sees."),
    h("label", {}, "API key ", input),
    " ",
    h("button", { type: "submit" }, "Log in"),
    problem ? message("error", problem) : "",
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    try {
      await get("/v1/namespaces", { query: { limit: 1 } });
    } catch (error) {
      forgetApiKey();
      showLogin(error.status === 401 ? `That key is not valid: ${error.message}` : error.message);
      return;
    }
    await enter();
  });
  main.replaceChildren(form);
  input.focus();
}

async function enter() {
  role = await keyRole();
  document.body.classList.remove("logged-out");
  who.replaceChildren(
    h("span", { class: "key-id" }, `key ${keyId()}`),
    ROLES[role] ? h("span", { class: `role ${role}` }, ROLES[role]) : "",
  );
  if (!location.hash) history.replaceState(null, "", "#/namespaces");
  await show();
}

document.getElementById("logout").addEventListener("click", () => {
  forgetApiKey();
  role = "unknown";
  showLogin();
});
window.addEventListener("hashchange", () => loggedIn() && show());
window.addEventListener("envbranch:unauthorized", (event) => {
  if (loggedIn()) {
    forgetApiKey();
    showLogin(`The API refused the key: ${event.detail}`);
  }
});

if (apiKey()) enter();
else showLogin();
