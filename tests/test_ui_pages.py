"""The inspector's pages through its ASGI app (lifespan included), on SQLite and PostgreSQL: what each page
shows, search and keyset paging, the export document, tenants, the security headers on every response,
and error pages that say what the CLI says, with the right status and no traceback."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from starlette.testclient import TestClient

from immagent import Store
from immagent.ui import _pages, create_app
from immagent.ui._app import CSP, templates
from immagent.ui._family import short_id
from tests.support.postgres import PostgresServer
from tests.support.proxy import BlackholeProxy, upstream_of, url_through
from tests.support.schema import immagent_cli
from tests.support.ui import Story, error_line, seed_story, text_of

UUID_LINK = re.compile(r'<tr>\s*<td><a class="sid" href="/state/([0-9a-f-]{36})"')
PACKAGE = Path(__file__).resolve().parents[1] / "immagent" / "ui"


@pytest.fixture
async def story(store: Store) -> Story:
    return await seed_story(store)


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(db_url), base_url="http://127.0.0.1") as test_client:
        yield test_client


def ok(client: TestClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.text)
    return response.text


async def test_the_states_page_lists_newest_first_marks_threads_and_searches(
    client: TestClient, story: Story, store: Store
) -> None:
    page = ok(client, "/agents")
    newest_first = [story.tagged, story.branch_b, story.branch_a, story.twin, story.weather, story.asked]
    assert UUID_LINK.findall(page) == [str(s.id) for s in [*newest_first, story.root]]
    assert "7 in all" in text_of(page)
    assert 'href="/thread?key=ticket%2F42">⇐ ticket/42</a>' in page
    assert UUID_LINK.findall(ok(client, "/")) == UUID_LINK.findall(page)

    await store.create_agent(name="Zeppelin crew", system_prompt="p", model="m")
    found = ok(client, "/agents?q=zepp")
    assert len(UUID_LINK.findall(found)) == 1 and "1 match" in text_of(found)
    assert "no states whose name contains “nobody”" in text_of(ok(client, "/agents?q=nobody"))
    by_id = ok(client, f"/agents?q={story.branch_a.id}")
    assert f"State {short_id(story.branch_a.id)} (travel) has this id." in text_of(by_id)


async def test_listings_page_through_the_stores_own_cursors(
    client: TestClient, story: Story, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pages, "PAGE_SIZE", 3)
    seen: list[str] = []
    path: str | None = "/agents"
    while path is not None:
        page = ok(client, path)
        rows = UUID_LINK.findall(page)
        assert 0 < len(rows) <= 3
        seen += rows
        following = re.search(r'<a rel="next" href="([^"]+)">older »</a>', page)
        path = following.group(1).replace("&amp;", "&") if following else None
        assert ("« newest" in page) == (len(seen) > 3)
    assert seen == [str(s.id) for s in reversed(list(story))]

    for n in range(4):
        await store.create_thread(f"extra/{n}", story.root)
    first = ok(client, "/threads")
    assert text_of(first).count("extra/") == 3
    cursor = re.search(r'href="/threads\?after=([^"]+)"', first)
    assert cursor is not None
    rest = ok(client, f"/threads?after={cursor.group(1)}")
    assert "extra/0" in rest and "ticket/42" in rest and 'rel="next"' not in rest
    assert "ticket/42" not in ok(client, "/threads?q=extra") and "extra/2" in ok(client, "/threads?q=EXTRA/2")


async def test_a_state_page_shows_fields_prompt_and_the_conversation_for_reading(
    client: TestClient, story: Story
) -> None:
    page = ok(client, f"/state/{story.branch_a.id}")
    text = text_of(page)
    assert f"id {story.branch_a.id}" in text and "model immagent/scripted" in text
    assert "You are a concise travel assistant." in text
    assert "tokens in 150 · out 38 (whole history)" in text  # 12+30+48+60, 6+9+11+12
    assert "10 messages" not in text and "8 messages · tokens in 150, out 38" in text
    assert "tokens in 30 · out 9" in text  # per message
    assert re.search(r'<details class="call">\s*<summary>tool call <code>get_weather</code> · call_7', page)
    assert '"city": "Paris"' in page.replace("&#34;", '"')  # the arguments, indented
    assert re.search(r'<details class="result">\s*<summary>tool result · 23 characters</summary>', page)
    assert "result of get_weather · call_7" in text
    assert text.index("this state's own turn") < text.index("#7 user") < text.index("Plan a rainy day")
    assert f'href="/state/{story.weather.id}"' in page  # parent
    assert f'href="/state/{story.tagged.id}"' in page  # child
    assert f'href="/state/{story.branch_a.id}/tree"' in page
    assert "⇐ ticket/42" in text and '"temperature": 0.2' in page.replace("&#34;", '"')

    weather = text_of(ok(client, f"/state/{story.weather.id}"))
    assert f"siblings {short_id(story.twin.id)} (compare, same history)" in weather
    root = text_of(ok(client, f"/state/{story.root.id}"))
    assert "none: this is the root" in root and "no messages" in root


async def test_the_tree_page_draws_every_state_and_marks_clones_thread_heads_and_this_state(
    client: TestClient, story: Story
) -> None:
    page = ok(client, f"/state/{story.branch_b.id}/tree")
    svg = page[page.index("<svg") : page.index("</svg>")]
    for state in story:
        assert f'id="n-{state.id}"' in svg and f'href="/state/{state.id}"' in svg
    assert svg.count('class="node ') == 7 and svg.count('<path class="edge step"') == 6
    assert svg.count('<path class="edge same"') == 1  # the clone, tied to the state it copies
    assert f"clone: same history as {short_id(story.weather.id)}" in svg
    assert re.search(rf'<a id="n-{story.branch_a.id}" class="node turn thread"', svg)
    assert re.search(rf'<a id="n-{story.branch_b.id}" class="node turn current"', svg)
    assert '<tspan class="badge">⇐ ticket/42</tspan>' in svg and "◀ this state" in svg
    assert "7 states in 2 lanes" in text_of(page)
    tips = page[page.index("Branch tips") :]
    assert {str(story.branch_b.id), str(story.tagged.id), str(story.branch_a.id)} <= set(
        re.findall(r'name="a" value="([0-9a-f-]{36})"', tips)
    )
    assert ok(client, f"/state/{story.branch_b.id}/tree?full=1").count('class="node ') == 7


async def test_compare_shows_the_common_history_once_then_both_tails(
    client: TestClient, story: Story
) -> None:
    page = ok(client, f"/compare?a={story.branch_a.id}&b={story.branch_b.id}")
    text = text_of(page)
    assert text.count("What's the weather in Paris right now?") == 1
    assert text.count("Plan a rainy day for me: museums?") == 1
    assert text.count("Where should we eat tonight?") == 1
    assert "They share 6 messages, stored once; then A adds 2 and B adds 2." in text
    assert f"Last common state: {short_id(story.asked.id)}" in text
    sides = page[page.index('<div class="sides">') :]
    assert sides.index("Plan a rainy day") < sides.index("Where should we eat")
    assert "tokens in 60, out 12" in text and "tokens in 61, out 10" in text

    same = text_of(ok(client, f"/compare?a={story.weather.id}&b={story.twin.id}"))
    assert "Both have the same history" in same
    assert "Compare two states" in text_of(ok(client, "/compare"))


async def test_a_threads_log_links_every_position(client: TestClient, story: Story) -> None:
    listed = ok(client, "/threads")
    assert 'href="/thread?key=ticket%2F42">ticket/42</a>' in listed
    page = ok(client, "/thread?key=ticket/42")
    rows = re.findall(
        r"<tr[^>]*>\s*<td>(\d+)</td>.*?kind-(\w+).*?href=\"/state/([0-9a-f-]{36})\"", page, re.S
    )
    assert rows == [
        ("0", "create", str(story.branch_a.id)),
        ("1", "move", str(story.branch_b.id)),
        ("2", "move", str(story.branch_a.id)),
    ]
    assert "◀ head" in text_of(page) and '"customer": 42' in page.replace("&#34;", '"')
    assert f"/compare?a={story.branch_b.id}&amp;b={story.branch_a.id}" in page


async def test_the_export_is_the_document_immagent_export_writes(
    client: TestClient, story: Story, db_url: str
) -> None:
    response = client.get(f"/state/{story.branch_a.id}/export.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert (
        response.headers["content-disposition"] == f'attachment; filename="immagent-{story.branch_a.id}.json"'
    )
    cli = await immagent_cli("export", str(story.branch_a.id), "--url", db_url)
    assert cli.returncode == 0, cli.stderr
    ours, theirs = json.loads(response.text), json.loads(cli.stdout)
    assert ours.pop("exported_at") and theirs.pop("exported_at")
    assert ours == theirs and len(ours["agents"]) == 4 and len(ours["messages"]) == 8


async def test_every_response_carries_the_security_headers_and_no_script(
    client: TestClient, story: Story
) -> None:
    paths = [
        "/agents",
        "/threads",
        "/thread?key=ticket/42",
        f"/state/{story.branch_a.id}",
        f"/state/{story.branch_a.id}/tree",
        f"/compare?a={story.branch_a.id}&b={story.branch_b.id}",
        f"/state/{story.branch_a.id}/export.json",
        "/static/ui.css",
        "/state/not-an-id",
        f"/state/{uuid4()}",
        "/no/such/page",
    ]
    for path in paths:
        response = client.get(path)
        headers = response.headers
        assert headers["content-security-policy"] == CSP, path
        assert "frame-ancestors 'none'" in CSP and "script-src 'none'" in CSP
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer" and headers["x-frame-options"] == "DENY"
        if headers["content-type"].startswith("text/html"):
            assert "<script" not in response.text and " style=" not in response.text, path
            assert headers["cache-control"] == "no-store"


async def test_errors_are_pages_with_the_clis_own_line_and_status(
    client: TestClient, story: Story, db_url: str
) -> None:
    missing = uuid4()
    cases = [
        (f"/state/{missing}", 404, ("show", str(missing))),
        (f"/state/{missing}/tree", 404, ("tree", str(missing))),
        ("/state/not-a-uuid", 400, ("show", "not-a-uuid")),
        ("/thread?key=nope", 404, ("threads", "nope")),
        ("/thread?key=%20padded", 400, ("threads", " padded")),
        ("/agents?after=garbage", 400, ("agents", "--after", "garbage")),
        ("/threads?after=garbage", 400, ("threads", "--after", "garbage")),
    ]
    for path, status, command in cases:
        response = client.get(path)
        assert response.status_code == status, path
        cli = await immagent_cli(*command, "--url", db_url)
        assert cli.returncode == 1
        assert error_line(response.text) == cli.stderr.strip(), path
        assert "Traceback" not in response.text
    assert client.get("/no/such/page").status_code == 404
    assert error_line(client.get("/no/such/page").text) == "error: no such page: GET /no/such/page"
    assert client.post("/agents").status_code == 405
    assert client.get("/thread").status_code == 400  # no key
    refused = client.get("/agents", headers={"host": "attacker.example"})
    assert refused.status_code == 400 and "attacker.example" in error_line(refused.text)
    assert client.get("/agents", headers={"host": "localhost:8765"}).status_code == 200
    assert client.get("/agents", headers={"host": "[::1]:8765"}).status_code == 200


@pytest.mark.parametrize("fresh_db_url", ["sqlite", "postgresql"], indirect=True)
async def test_a_database_behind_its_schema_is_a_503_page_with_the_clis_line(fresh_db_url: str) -> None:
    async with await Store.connect(fresh_db_url) as store:
        await store.migrate("0001")
    with TestClient(create_app(fresh_db_url), base_url="http://127.0.0.1") as client:
        response = client.get("/agents")
    assert response.status_code == 503
    cli = await immagent_cli("agents", "--url", fresh_db_url)
    assert error_line(response.text) == cli.stderr.strip() != ""
    assert "behind this library's head" in cli.stderr and "immagent db upgrade" in cli.stderr


async def test_a_database_that_goes_away_is_a_503_page(pg_server: PostgresServer) -> None:
    url = pg_server.create_database("immagent_ui_away")
    try:
        async with await Store.connect(url) as store:
            await store.migrate()
            story = await seed_story(store)
        proxy = BlackholeProxy(upstream_of(url)).start()
        try:
            app = create_app(url_through(url, proxy))
            with TestClient(app, base_url="http://127.0.0.1") as client:
                assert client.get(f"/state/{story.branch_a.id}").status_code == 200
                proxy.close()
                response = client.get(f"/state/{story.branch_a.id}/tree")
        finally:
            proxy.close()
    finally:
        pg_server.drop_database(url)
    assert response.status_code == 503
    assert error_line(response.text).startswith("error: the database is unavailable (")


async def test_a_tenants_inspector_sees_only_that_tenant(db_url: str, story: Story, store: Store) -> None:
    acme = store.tenant("acme")
    own = await acme.create_agent(name="acme's own", system_prompt="p", model="m")
    with TestClient(create_app(db_url, tenant="acme"), base_url="http://127.0.0.1") as client:
        listed = ok(client, "/agents")
        assert UUID_LINK.findall(listed) == [str(own.id)]
        assert "tenant acme" in text_of(listed)
        hidden = client.get(f"/state/{story.branch_a.id}")
        assert hidden.status_code == 404
        assert error_line(hidden.text) == f"error: agent {story.branch_a.id} not found"
        assert client.get("/thread?key=ticket/42").status_code == 404
        assert "no threads" in text_of(ok(client, "/threads"))


async def test_reading_every_page_writes_nothing(client: TestClient, story: Story, store: Store) -> None:
    before = await store.stats()
    for state in story:
        for path in (f"/state/{state.id}", f"/state/{state.id}/tree", f"/state/{state.id}/export.json"):
            ok(client, path)
    for path in (
        "/agents",
        "/threads",
        "/thread?key=ticket/42",
        f"/compare?a={story.root.id}&b={story.tagged.id}",
    ):
        ok(client, path)
    assert await store.stats() == before


def test_templates_escape_everything_and_nothing_is_marked_safe() -> None:
    assert templates().autoescape is True
    sources = [*PACKAGE.glob("templates/*.html"), *PACKAGE.glob("*.py")]
    assert len(sources) >= 12
    for source in sources:
        code = source.read_text()
        for unsafe in ("|safe", "| safe", "Markup", "autoescape false", "{% autoescape", "__html__"):
            assert unsafe not in code, (source.name, unsafe)


async def test_a_deleted_state_is_a_gap_in_the_tree_and_its_descendants_still_open(
    client: TestClient, story: Story, store: Store
) -> None:
    await store.delete(story.weather)
    tree = ok(client, f"/state/{story.branch_a.id}/tree")
    assert re.search(rf'<g id="n-{story.weather.id}" class="node gap">', tree)
    assert (
        f"deleted state {short_id(story.weather.id)}" in tree
        and f'href="/state/{story.weather.id}"' not in tree
    )
    assert tree.count('class="node ') == 7  # six states and the gap they still hang from
    page = text_of(ok(client, f"/state/{story.branch_a.id}"))
    assert f"parent {story.weather.id} (deleted)" in page and "8 messages" in page
    assert client.get(f"/state/{story.weather.id}").status_code == 404
