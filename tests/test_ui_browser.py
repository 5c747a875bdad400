"""The inspector in a real browser (Debian's chromium through Playwright), served by uvicorn on loopback:
a person's way through the demo's database (list -> state -> tree -> a click in the graph -> compare ->
a thread's log -> a position -> export), a 1,000-state tree, and error pages. Screenshots of each step
are kept in test-artifacts/ui/ (the docs' pictures come from there)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from immagent import Store
from immagent.ui import create_app
from tests.support import cli as cli_support
from tests.support.browser import ARTIFACTS, Watch, chromium_or_explain, launch
from tests.support.cli import DemoRun
from tests.support.trees import store_tree
from tests.support.ui import served

demo_run = cli_support.demo_run


def test_without_chromium_ci_fails_and_elsewhere_it_is_skipped_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMMAGENT_TEST_CHROMIUM", "/nowhere/chromium")
    monkeypatch.delenv("IMMAGENT_REQUIRE_BROWSER", raising=False)
    why = "the inspector's browser tests need chromium and found none at /nowhere/chromium: install Debian's"
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=re.escape(why)):
        chromium_or_explain()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=re.escape(why)):
        chromium_or_explain()


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_explain()


@pytest.fixture(scope="module")
async def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """One browser for the module, CSP enforced, with a fresh profile."""
    async with launch(chromium, tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture(scope="module")
def demo_site(demo_run: DemoRun) -> Iterator[str]:
    """The inspector on the demo's database (it only reads, so the shared database stays as it was)."""
    with served(create_app(demo_run.url)) as base:
        yield base


async def shot(page: Any, name: str, *, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


async def visible(page: Any) -> str:
    return " ".join((await page.inner_text("body")).split())


async def test_a_person_walks_from_the_list_to_a_state_its_tree_a_branch_a_comparison_and_a_thread(
    browser: Any, demo_site: str, demo_run: DemoRun
) -> None:
    a, b, key = demo_run.branch_a, demo_run.branch_b, demo_run.thread
    watch = Watch(demo_site)
    page = watch.attach(await browser.new_page())

    await page.goto(demo_site + "/")
    assert "States 7 in all" in await visible(page)
    assert await page.locator(f'td a.badge:has-text("⇐ {key}")').count() == 1
    await watch.check(page, "states")
    await shot(page, "states")

    await page.fill('input[name="q"]', "DEM")
    await page.click("form.search button")
    assert "7 match" in await visible(page)
    await page.fill('input[name="q"]', "nobody")
    await page.click("form.search button")
    assert "no states whose name contains “nobody”" in await visible(page)

    await page.goto(demo_site + "/")
    await page.click(f'tbody a.sid[href="/state/{a}"]')
    await page.wait_for_url(f"**/state/{a}")
    text = await visible(page)
    assert "Plan a rainy day for me: museums?" in text and f"⇐ {key}" in text
    assert "10 messages · tokens in" in text
    result = page.locator("details.result .text")
    assert not await result.is_visible()  # tool results are folded...
    await page.click("details.result summary")
    assert await result.is_visible() and "Paris: 18°C, light rain" in await result.inner_text()  # ...and open
    await page.click("details.call summary")
    assert '"city": "Paris"' in await page.inner_text("details.call pre")
    await watch.check(page, "state")
    await shot(page, "state")

    await page.click("text=Family tree")
    await page.wait_for_url(f"**/state/{a}/tree")
    assert await page.locator("svg.tree a.node, svg.tree g.node").count() == 7
    assert await page.locator("svg.tree a.node.current").get_attribute("id") == f"n-{a}"
    assert await page.locator("svg.tree a.node.clone").count() == 1
    assert f"⇐ {key}" in (await page.text_content(f'svg.tree a[id="n-{a}"]') or "")
    await watch.check(page, "tree")
    await shot(page, "tree")

    await page.click(f'svg.tree a[id="n-{b}"]')  # a click in the graph opens that state
    await page.wait_for_url(f"**/state/{b}")
    assert "Where should we eat tonight?" in await visible(page)

    await page.click("text=Family tree")
    await page.check(f'input[name="a"][value="{a}"]')
    await page.check(f'input[name="b"][value="{b}"]')
    await page.click("text=Compare A with B")
    await page.wait_for_url("**/compare?*")
    text = await visible(page)
    assert "They share 8 messages, stored once; then A adds 2 and B adds 2." in text
    sides = page.locator(".sides section")
    assert "Plan a rainy day" in await sides.nth(0).inner_text()
    assert "Where should we eat tonight?" in await sides.nth(1).inner_text()
    await watch.check(page, "compare")
    await shot(page, "compare")

    await page.click("header.top >> text=Threads")
    await page.click(f"text={key}")
    await page.wait_for_url("**/thread?key=*")
    rows = page.locator("table.log tbody tr")
    assert await rows.count() == 7
    assert "◀ head" in await rows.nth(6).inner_text()
    await watch.check(page, "thread")
    await shot(page, "thread")
    await rows.nth(5).locator("a.sid").click()  # position 5: the move to branch B
    await page.wait_for_url(f"**/state/{b}")

    async with page.expect_download() as download:
        await page.click("text=Export JSON")
    saved = Path(await (await download.value).path())
    document = json.loads(await asyncio.to_thread(saved.read_text))
    assert (document["format"], document["state_id"], len(document["messages"])) == ("immagent.export", b, 10)
    await watch.check(page, "export")
    await page.close()


async def test_error_pages_explain_in_one_line(browser: Any, demo_site: str) -> None:
    watch = Watch(demo_site)
    page = watch.attach(await browser.new_page())
    missing = uuid4()
    for path, status, line in [
        (f"/state/{missing}", 404, f"error: agent {missing} not found"),
        ("/state/not-an-id", 400, "error: agent_id: not a UUID: 'not-an-id'"),
        ("/thread?key=nope", 404, "error: thread 'nope' not found"),
    ]:
        watch.expected_status = status
        response = await page.goto(demo_site + path)
        assert response.status == status
        assert await page.inner_text(".error-line") == line
        await watch.check(page, path)
    await shot(page, "error")
    await page.close()


@pytest.fixture(scope="module")
async def large_tree(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, str]]:
    """A database holding one 1,000-state tree (a long chat with branches, clones and a thread)."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('large') / 'large.db'}"
    async with await Store.connect(url) as store:
        await store.migrate()
        states = await store_tree(store, 1000, "chat", name="long chat")
        await store.create_thread("support/1042", states[-1])
    with served(create_app(url)) as base:
        yield base, str(states[-1].id)


async def test_a_1000_state_tree_folds_its_runs_and_unfolds_on_demand(
    browser: Any, large_tree: tuple[str, str]
) -> None:
    base, tip = large_tree
    watch = Watch(base)
    page = watch.attach(await browser.new_page())
    await page.goto(f"{base}/state/{tip}/tree")
    summary = await page.inner_text("p.summary")
    assert summary.startswith("1000 states in ") and "in linear runs are folded" in summary
    runs = page.locator("svg.tree a.node.run")
    assert await runs.count() > 10
    assert await page.locator("svg.tree a.node.current").count() == 1
    await watch.check(page, "large tree, folded")
    await shot(page, "tree-large", full_page=False)

    await runs.first.click()  # a folded run opens the whole tree at its first state
    await page.wait_for_url(re.compile(r"/tree\?full=1#n-[0-9a-f-]{36}$"))
    assert await page.locator("svg.tree a.node").count() == 1000
    await watch.check(page, "large tree, full")
    await page.close()
