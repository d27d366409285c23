"""The console at /console, in a real browser (Debian's chromium, driven by Playwright)
against a live stack: it shows what the public API answers the key it logged in with.

Each test saves a full-page screenshot of the page it checked under artifacts/console/.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from envbranch import Client, EnvbranchError
from envbranch.demo import GATE, Story, search_stage
from tests.conftest import LiveStack

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "artifacts" / "console"
CHROMIUM = "/usr/bin/chromium"  # Playwright's own browser download does not work here
WAIT = 30_000  # ms: how long an expectation waits for the page to show it
TEXT = {"feature_extractor_name": "text_extractor", "version": "v1"}
MARKUP = '<img src="x" onerror="window.injected = 1">'


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"the console tests drive {CHROMIUM}: apt-get install chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab (its own sessionStorage) that fails the test on a script error or on
    anything the page's Content-Security-Policy refused."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    tab.on(
        "console",
        lambda message: (
            problems.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield tab
    context.close()
    assert problems == []


def log_in(page: Page, stack: LiveStack, key: str | None = None) -> None:
    page.goto(f"{stack.url}/console")
    page.fill("#api-key", key or stack.admin_key)
    page.click("#login button[type=submit]")
    expect(page.locator("#who .key-id")).to_have_text(re.compile(r"^key \w+$"), timeout=WAIT)


def open_page(page: Page, stack: LiveStack, route: str) -> None:
    """Go to a page of the console (``#/<page>/...``) and wait until it has loaded."""
    page.goto(f"{stack.url}/console#{route}")
    name = route.strip("/").split("/")[0].split("?")[0]
    expect(page.locator(f"#page-{name}")).to_have_attribute("data-state", "ready", timeout=WAIT)


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def environment(client: Client, documents: int = 12) -> str:
    """A namespace with a bucket of ``documents`` objects, a collection over it and a
    retriever on the collection."""
    ns = unique("console")
    client.namespaces.create({"namespace_name": ns, "description": "production"})
    client.buckets.create(
        {"bucket_name": "articles", "bucket_schema": {"properties": {}}}, namespace=ns
    )
    client.collections.create(
        {
            "collection_name": "docs",
            "source": {"type": "bucket", "bucket_ids": ["articles"]},
            "feature_extractor": TEXT,
        },
        namespace=ns,
    )
    objects = [
        {"key": f"doc-{i}", "text": f"article number {i} about topic {i % 7}", "metadata": {}}
        for i in range(documents)
    ]
    for start in range(0, documents, 200):
        client.buckets.add_objects("articles", objects[start : start + 200], namespace=ns)
    client.retrievers.create(
        {
            "retriever_name": "search",
            "collection_identifiers": ["docs"],
            "stages": [search_stage()],
            "input_schema": {"query": {"type": "text", "required": True}},
        },
        namespace=ns,
    )
    return ns


# --- served by the API ----------------------------------------------------------------


def test_the_console_is_served_without_a_key_and_stays_out_of_the_openapi_document(
    live_stack: LiveStack,
) -> None:
    with httpx.Client(base_url=live_stack.url, timeout=30) as http:
        shell = http.get("/console")
        assert shell.status_code == 200, shell.text
        assert shell.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in shell.headers["content-security-policy"]
        script = http.get("/console/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert http.get("/console/console.css").headers["content-type"].startswith("text/css")
        for missing in ("/console/nothing.js", "/console/..%2Fapi%2Fconsole.py"):
            answer = http.get(missing)
            assert answer.status_code == 404, missing
            assert answer.json()["error"]["type"] == "not_found"
        assert http.get("/console/", follow_redirects=True).url.path == "/console"
        paths = http.get("/openapi.json").json()["paths"]
        assert not [p for p in paths if p.startswith("/console")]


# --- logging in -----------------------------------------------------------------------


def test_logging_in_takes_a_valid_key_and_logging_out_forgets_it(
    live_stack: LiveStack, page: Page
) -> None:
    with live_stack.client() as client:
        ns = environment(client)
        clone = unique("console-staging")
        client.namespaces.clone(ns, {"namespace_name": clone, "vectors": "reuse"})
    page.goto(f"{live_stack.url}/console")
    page.fill("#api-key", "eb_000000000000_not-a-key")
    page.click("#login button[type=submit]")
    expect(page.locator("#login .message.error")).to_contain_text("not valid", timeout=WAIT)
    assert page.evaluate("sessionStorage.length") == 0

    log_in(page, live_stack)
    expect(page.locator("#page-namespaces")).to_have_attribute("data-state", "ready", timeout=WAIT)
    row = page.locator(f"tr.namespace[data-name='{ns}']")
    expect(row.locator(".size.buckets")).to_have_text("1")
    expect(row.locator(".size.objects")).to_have_text("12")
    expect(row.locator(".size.collections")).to_have_text("1")
    expect(row.locator(".size.retrievers")).to_have_text("1")
    cloned = page.locator(f"tr.namespace[data-name='{clone}']")
    expect(cloned).to_contain_text(ns)
    expect(cloned.locator(".status")).to_have_text("ready")
    screenshot(page, "namespaces")

    page.click("#logout")
    expect(page.locator("#api-key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    expect(page.locator("#api-key")).to_be_visible(timeout=WAIT)


# --- lineage --------------------------------------------------------------------------


def test_the_lineage_graph_draws_each_clone_with_an_edge_from_its_source(
    live_stack: LiveStack, page: Page
) -> None:
    with live_stack.client() as client:
        source = environment(client)
        staging, experiment = unique("console-staging"), unique("console-experiment")
        b = client.namespaces.clone(source, {"namespace_name": staging, "vectors": "reuse"})
        c = client.namespaces.clone(staging, {"namespace_name": experiment, "vectors": "reuse"})
        a_id = b.source_namespace_id
        b_id, c_id = b.namespace.namespace_id, c.namespace.namespace_id
    log_in(page, live_stack)
    open_page(page, live_stack, f"/lineage/{staging}")
    graph = page.locator("svg.lineage")
    for name in (source, staging, experiment):
        expect(graph.locator(f"g.node[data-name='{name}']")).to_have_count(1)
    expect(graph.locator(f"g.node[data-name='{staging}']")).to_have_class(re.compile("selected"))
    expect(graph.locator(f"path.edge[data-source='{a_id}'][data-clone='{b_id}']")).to_have_count(1)
    expect(graph.locator(f"path.edge[data-source='{b_id}'][data-clone='{c_id}']")).to_have_count(1)
    expect(graph.locator(f"path.edge[data-clone='{a_id}']")).to_have_count(0)
    details = page.locator(".lineage-details")
    expect(details.locator("tr.clone-event")).to_have_count(2)  # from its source, into its clone
    expect(details).to_contain_text(source)
    expect(details).to_contain_text(experiment)
    screenshot(page, "lineage")

    graph.locator(f"g.node[data-name='{experiment}']").click()
    expect(page).to_have_url(re.compile(f"#/lineage/{experiment}$"))
    expect(page.locator(".lineage-details h3")).to_have_text(experiment, timeout=WAIT)


# --- a namespace's resources ----------------------------------------------------------


def test_each_resource_opens_onto_its_lineage_and_its_events(
    live_stack: LiveStack, page: Page
) -> None:
    with live_stack.client() as client:
        ns = environment(client)
        copy = client.collections.clone("docs", {"collection_name": "docs-copy"}, namespace=ns)
        docs_id = copy.source_collection_id
        client.namespaces.update(ns, {"description": MARKUP})
    log_in(page, live_stack)
    open_page(page, live_stack, f"/resources/{ns}")
    # What users wrote is shown as text, never run as markup.
    expect(page.locator(".namespace-info")).to_contain_text(MARKUP)
    expect(page.locator(".namespace-info img")).to_have_count(0)
    assert page.evaluate("window.injected") is None
    expect(page.locator("section.kind.collections h3")).to_have_text("Collections (2)")
    clone = page.locator("details.resource[data-name='docs-copy']")
    expect(clone.locator("summary")).to_contain_text(f"cloned from {docs_id}")
    clone.locator("summary").click()
    expect(clone.locator("ul.ancestors li")).to_contain_text(docs_id, timeout=WAIT)
    expect(clone.locator("tr.event .event-type").first).to_have_text("Collection.Cloned")
    source = page.locator("details.resource[data-name='docs']")
    source.locator("summary").click()
    expect(source.locator("ul.descendants li")).to_contain_text(copy.collection.collection_id)
    expect(source.locator("tr.event .event-type").first).to_have_text("Collection.Created")
    screenshot(page, "resources")


# --- tasks ----------------------------------------------------------------------------


def test_a_deep_copy_shows_its_progress_live_until_it_reaches_100_percent(
    live_stack: LiveStack, page: Page
) -> None:
    with live_stack.client() as client:
        ns = environment(client, documents=400)
        log_in(page, live_stack)
        open_page(page, live_stack, "/tasks")
        # Started once the page is open: it must find the task by itself.
        started = client.namespaces.clone(ns, {"namespace_name": unique("console-copy")})
        row = page.locator(f"tr.task[data-task-id='{started.task_id}']")
        expect(row.locator(".percent")).to_have_text("100%", timeout=WAIT)
        expect(row.locator("progress")).to_have_attribute("value", "100")
        expect(row).to_have_attribute("data-status", "COMPLETED")
        expect(row.locator(".progress-detail")).to_have_text("400 / 400 points copied")
        assert client.tasks.get(started.task_id).progress["points_copied"] == 400
    screenshot(page, "tasks")


# --- refs -----------------------------------------------------------------------------


def test_a_rollback_from_the_timeline_moves_the_ref_back_and_shows_in_it(
    live_stack: LiveStack, page: Page
) -> None:
    ns = unique("console-refs")
    with live_stack.client() as client:
        Story(client, lambda _: None, modules=2).production(ns)  # ref live -> search
        search = client.retrievers.get("search", namespace=ns).retriever_id
        for name in ("search-b", "search-c"):
            client.retrievers.clone("search", {"retriever_name": name}, namespace=ns)
        promotion = {"candidate": "search-b", "evaluation_set": "stdlib-queries", "gate": GATE}
        client.refs.promote("live", {**promotion, "reason": "same quality"}, namespace=ns)
        impossible = {"thresholds": [{"metric": "ndcg@10", "min": 2}]}
        with pytest.raises(EnvbranchError):
            client.refs.promote(
                "live", {**promotion, "candidate": "search-c", "gate": impossible}, namespace=ns
            )
        client.refs.move("live", {"target": "search-c", "reason": "by hand"}, namespace=ns)

        log_in(page, live_stack)
        open_page(page, live_stack, f"/refs/{ns}")
        ref = page.locator("article.ref[data-ref='live']")
        entries = ref.locator("ol.timeline > li.entry")
        expect(entries).to_have_count(4)
        actions = ["move", "promotion_refused", "promote", "create"]
        for index, action in enumerate(actions):
            expect(entries.nth(index)).to_have_attribute("data-action", action)
        promoted = ref.locator("li.entry[data-action='promote']")
        expect(promoted.locator(".gate.passed")).to_be_visible()
        expect(promoted.locator("table.metrics")).to_contain_text("ndcg@10", timeout=WAIT)
        refused = ref.locator("li.entry[data-action='promotion_refused']")
        expect(refused.locator(".gate.failed")).to_contain_text("below the floor")
        expect(refused.locator(".rollback-button")).to_have_count(0)
        screenshot(page, "refs-before-rollback")

        created = ref.locator("li.entry[data-action='create']")
        created.locator(".rollback-button").click()
        created.locator(".rollback-reason").fill("back to the original")
        created.locator(".confirm-rollback").click()
        expect(entries).to_have_count(5, timeout=WAIT)
        expect(entries.first).to_have_attribute("data-action", "rollback")
        expect(entries.first.locator(".in-force")).to_have_text("current")
        expect(entries.first).to_contain_text("back to the original")
        expect(ref.locator(".current-target")).to_contain_text(search)
        assert client.refs.get("live", namespace=ns).target_id == search
    screenshot(page, "refs")


# --- diff -----------------------------------------------------------------------------


def test_the_diff_shows_two_namespaces_side_by_side(live_stack: LiveStack, page: Page) -> None:
    with live_stack.client() as client:
        production = environment(client)
        staging = unique("console-staging")
        client.namespaces.clone(production, {"namespace_name": staging, "vectors": "reuse"})
        client.retrievers.update("search", {"description": "tuned"}, namespace=staging)
        client.retrievers.clone("search", {"retriever_name": "extra"}, namespace=staging)
    log_in(page, live_stack)
    open_page(page, live_stack, "/diff")
    page.select_option("#diff-from", production)
    page.select_option("#diff-to", staging)
    page.click("#compare")
    expect(page.locator("#page-diff")).to_have_attribute("data-state", "ready", timeout=WAIT)
    diff = page.locator("table.diff")
    expect(diff.locator("th.side.from")).to_have_text(production, timeout=WAIT)
    expect(diff.locator("th.side.to")).to_have_text(staging)
    extra = diff.locator("tr.diff-row[data-name='extra']")
    expect(extra).to_have_attribute("data-state", "only-to")
    expect(extra.locator("td.side.from")).to_have_text("—")
    changed = diff.locator("tr.diff-row[data-kind='retriever'][data-name='search']")
    expect(changed).to_have_attribute("data-state", "changed")
    expect(changed.locator("td.side.from")).to_contain_text('description: ""')
    expect(changed.locator("td.side.to")).to_contain_text('description: "tuned"')
    expect(diff.locator("tr.diff-row[data-name='docs']")).to_have_attribute(
        "data-state", "unchanged"
    )
    screenshot(page, "diff")


# --- scopes ---------------------------------------------------------------------------


def test_a_scoped_key_sees_only_its_namespaces(live_stack: LiveStack, page: Page) -> None:
    with live_stack.client() as client:
        mine, other = environment(client), environment(client)
        key = client.keys.create(unique("viewer"), [mine]).api_key
        assert key is not None
    log_in(page, live_stack, key)
    expect(page.locator("#page-namespaces")).to_have_attribute("data-state", "ready", timeout=WAIT)
    expect(page.locator("tr.namespace")).to_have_count(1)
    expect(page.locator("tr.namespace")).to_have_attribute("data-name", mine)
    open_page(page, live_stack, "/lineage")
    expect(page.locator("svg.lineage g.node")).to_have_count(1)
    open_page(page, live_stack, f"/diff?from={mine}&to={other}")
    expect(page.locator("#page-diff .message.error")).to_contain_text("404 not_found")
    open_page(page, live_stack, "/dlq")
    refused = page.locator(".dlq-list .message")
    expect(refused).to_have_count(1)
    expect(refused).to_have_text(re.compile("takes an admin key|answered 404"))
    screenshot(page, "namespaces-scoped")


# --- dead letters ---------------------------------------------------------------------


def test_the_dead_letter_page_renders(live_stack: LiveStack, page: Page) -> None:
    log_in(page, live_stack)
    open_page(page, live_stack, "/dlq")
    shown = page.locator("table.dlq, .dlq-list .message.unavailable")
    expect(shown).to_have_count(1)
    screenshot(page, "dlq")
