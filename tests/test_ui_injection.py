"""Untrusted text through every page, in a real browser: a corpus of script-injection payloads (script tags,
event handlers, javascript: URLs, SVG payloads, broken markup, CSS tricks) stored as messages, tool calls
and results, names, models, system prompts, metadata, thread keys and the tenant, plus reflected through
search boxes, ids and keys in URLs. Every page is loaded twice: once with the Content-Security-Policy
ignored (escaping alone must keep every payload inert) and once enforced (where any CSP violation counts as
a failure of the escaping, not as a success). Nothing may run, nothing foreign may enter the DOM, no
request may leave the inspector, and each payload must be on screen exactly as it was stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from immagent import Message, PersistentAgent, Store, SystemPrompt, ToolCall
from immagent._ids import content_id, uuid7
from immagent.ui import create_app
from immagent.ui._app import SECURITY_HEADERS
from immagent.ui._family import family
from tests.support.browser import ARTIFACTS, Watch, chromium_or_explain, launch
from tests.support.trees import new_root
from tests.support.ui import served

#: Each payload calls __pwned(n) (or alert) if it ever runs; the watch records any such call.
PAYLOADS = [
    "<script>__pwned(1)</script>",
    "<ScRiPt>__pwned(2)</sCrIpT>",
    "<script src=data:text/javascript,__pwned(3)></script>",
    "<img src=x onerror=__pwned(4)>",
    '<img src="x" onerror="__pwned(5)">',
    "<svg onload=__pwned(6)>",
    "<svg/onload=__pwned(7)>",
    "<svg><script>__pwned(8)</script></svg>",
    '<svg><a xlink:href="javascript:__pwned(9)"><text x="20" y="20">tap</text></a></svg>',
    "<svg><animate onbegin=__pwned(10) attributeName=x dur=1s>",
    "<body onload=__pwned(11)>",
    '<iframe src="javascript:__pwned(12)"></iframe>',
    '<a href="javascript:__pwned(13)">click me</a>',
    "javascript:__pwned(14)",
    '"><script>__pwned(15)</script>',
    "'><img src=x onerror=__pwned(16)>",
    '" onmouseover="__pwned(17)',
    "</textarea><script>__pwned(18)</script>",
    "</title><script>__pwned(19)</script>",
    "</tspan></text><script>__pwned(20)</script>",
    "</pre></div></details><script>__pwned(21)</script>",
    "]]><script>__pwned(22)</script>",
    "<!--<script>__pwned(23)</script>-->",
    "<details open ontoggle=__pwned(24)>",
    "<input autofocus onfocus=__pwned(25)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=__pwned(26)>",
    '<object data="javascript:__pwned(27)"></object>',
    '<embed src="javascript:__pwned(28)">',
    '<meta http-equiv="refresh" content="0;url=javascript:__pwned(29)">',
    '<base href="javascript:__pwned(30)//">',
    '<form action="javascript:__pwned(31)"><button>go</button></form>',
    "<style>@import 'javascript:__pwned(32)';</style>",
    '<div style="background:url(javascript:__pwned(33))">css</div>',
    "<style>body{display:none}</style>",
    '<link rel=stylesheet href="http://attacker.example/x.css">',
    '<img src="http://attacker.example/pixel.png?leak">',
    "<scr<script>ipt>__pwned(37)</script>",
    "&lt;script&gt;__pwned(38)&lt;/script&gt;",
    "{{ 7*7 }} {% raw %} ${__pwned(39)}",
    '<noscript><p title="</noscript><img src=x onerror=__pwned(40)>">',
    "<template><script>__pwned(41)</script></template>",
    "<x onclick=__pwned(42)>click</x>",
    "<script>\n__pwned(43)\n</script>",
    "\\u003cscript\\u003e__pwned(44)\\u003c/script\\u003e",
    "<a href=&#106;avascript:__pwned(45)>entity</a>",
    "<<script>>__pwned(46)<</script>>",
]
TENANT = "<img src=x onerror=__pwned(0)>\"'&amp;"
CLOCK = datetime(2026, 4, 1, tzinfo=UTC)


def flat(text: str) -> str:
    return " ".join(text.split())


def as_json(text: str) -> str:
    """How a string shows inside the pretty-printed JSON of metadata (escaped as JSON, not as HTML)."""
    return flat(json.dumps(text, ensure_ascii=False))


def test_the_corpus_fits_every_field_it_goes_through() -> None:
    assert len(PAYLOADS) == len(set(PAYLOADS)) >= 40
    assert all(p == p.strip() and len(p) <= 255 for p in PAYLOADS) and len(TENANT) <= 64


class Corpus:
    """The stored corpus: one chat holding every payload in every message role, a root per payload (its
    name, model, prompt, metadata, settings), and a thread per payload (its key and metadata)."""

    def __init__(self) -> None:
        times = iter(CLOCK + timedelta(milliseconds=i) for i in range(10_000))
        prompt = SystemPrompt(id=content_id("corpus"), content="corpus")
        self.prompts = [prompt]
        self.messages: list[Message] = []
        self.chat_root = new_root("corpus chat", prompt, next(times), model="immagent/scripted")
        self.chain: list[PersistentAgent] = []
        head: Message | None = None
        parent = self.chat_root

        def say(parent: Message | None, role: str, **fields: Any) -> Message:
            depth = parent.depth + 1 if parent else 0
            parent_id = parent.id if parent else None
            return Message(role=role, parent_id=parent_id, depth=depth, created_at=next(times), **fields)

        for i, p in enumerate(PAYLOADS):
            user = say(head, "user", content=p)
            call = ToolCall(id=p, name=p, arguments=p)
            asked = say(user, "assistant", tool_calls=(call,), input_tokens=i, output_tokens=1)
            result = say(asked, "tool", content=p, tool_call_id=p)
            reply = say(result, "assistant", content=p, input_tokens=i, output_tokens=2)
            self.messages += [user, asked, result, reply]
            head = reply
            parent = parent.model_copy(
                update={"id": uuid7(), "parent_id": parent.id, "head_id": reply.id, "created_at": next(times)}
            )
            self.chain.append(parent)
        self.roots: list[PersistentAgent] = []
        for p in PAYLOADS:
            text = SystemPrompt(id=content_id(p), content=p)
            self.prompts.append(text)
            self.roots.append(
                new_root(p, text, next(times), model=p, metadata={p: p}, model_settings={"note": p})
            )

    async def store(self, store: Store) -> None:
        scoped = store.tenant(TENANT)
        await scoped.import_states([self.chat_root, *self.chain, *self.roots], self.messages, self.prompts)
        for p, state in zip(PAYLOADS, self.chain, strict=True):
            await scoped.create_thread(p, state.id, metadata={p: p})


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_explain()


@pytest.fixture(scope="module")
async def corpus_site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, Corpus]]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('corpus') / 'corpus.db'}"
    corpus = Corpus()
    async with await Store.connect(url) as store:
        await store.migrate()
        await corpus.store(store)
    with served(create_app(url, tenant=TENANT)) as base:
        yield base, corpus


def pages(corpus: Corpus) -> Iterator[tuple[str, int, list[str]]]:
    """(path, status, texts the page must show verbatim) for every page the corpus reaches."""
    everything = [*PAYLOADS, TENANT]
    last = corpus.chain[-1]
    yield "/agents", 200, [*PAYLOADS, TENANT]  # names and models: the corpus's roots are the newest states
    yield "/threads", 200, everything
    yield f"/state/{last.id}", 200, everything  # every payload as user, tool call, tool result and reply
    yield f"/compare?a={corpus.chain[9].id}&b={last.id}", 200, everything
    yield f"/compare?a={last.id}&b={corpus.roots[0].id}", 200, everything  # two trees: no common history
    for p, root in zip(PAYLOADS, corpus.roots, strict=True):
        yield f"/state/{root.id}", 200, [p, as_json(p), TENANT]  # name, model, prompt; metadata as JSON
        yield "/thread?" + urlencode({"key": p}), 200, [p, as_json(p), TENANT]
        yield "/agents?" + urlencode({"q": p}), 200, [p]  # the search box reflects it, the match shows it
        missing = p + "~"
        yield "/thread?" + urlencode({"key": missing}), 404, [f"error: thread {missing!r} not found"]
        if "/" not in p and "?" not in p and "#" not in p:
            yield f"/state/{quote(p, safe='')}", 400, [f"error: agent_id: not a UUID: {p!r}"]
    for state in corpus.chain[::10]:
        yield f"/state/{state.id}/tree", 200, []  # folded: labels checked with the full tree below


@pytest.fixture(scope="module", params=["escaping alone (CSP bypassed)", "CSP enforced"])
async def browser(
    request: pytest.FixtureRequest, chromium: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[bool, Any]]:
    """A fresh browser that ignores the Content-Security-Policy, then one that enforces it."""
    bypass = request.param.startswith("escaping")
    async with launch(chromium, tmp_path_factory.mktemp("profile"), bypass_csp=bypass) as context:
        yield bypass, context


async def unsafe_page(scope: Any, receive: Any, send: Any) -> None:
    """A page that does what the inspector must never do: it puts stored text into markup unescaped."""
    assert scope["type"] == "http"
    body = f"<!doctype html><html><head><title>unsafe</title></head><body><p>{PAYLOADS[0]}{PAYLOADS[3]}</p>"
    headers = [(b"content-type", b"text/html; charset=utf-8"), *SECURITY_HEADERS]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})


async def test_the_watch_catches_a_page_that_does_not_escape(browser: tuple[bool, Any]) -> None:
    """The check below can fail: the same watch, on an unescaped page, sees the payloads run (CSP
    bypassed) or the policy block them (CSP enforced), and the foreign markup either way."""
    bypass, context = browser
    with served(unsafe_page, lifespan="off") as base:
        watch = Watch(base)
        page = watch.attach(await context.new_page())
        await page.goto(base + "/")
        with pytest.raises(AssertionError) as caught:
            await watch.check(page, "unsafe")
        await page.close()
    found = str(caught.value)
    assert "element script" in found and "img onerror" in found
    if bypass:
        assert "ran: 1" in found and "ran: 4" in found
    else:
        assert "ran:" not in found and "CSP: script-src" in found


async def test_no_payload_runs_and_every_payload_shows_as_stored(
    browser: tuple[bool, Any], corpus_site: tuple[str, Corpus]
) -> None:
    base, corpus = corpus_site
    bypass, context = browser
    watch = Watch(base)
    loaded = 0
    page = watch.attach(await context.new_page())
    for path, status, texts in pages(corpus):
        watch.expected_status = status if status != 200 else None
        response = await page.goto(base + path)
        assert response is not None and response.status == status, path
        assert page.url.startswith(base + "/"), (path, page.url)  # no navigation away
        await page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
        shown = flat(await page.inner_text("body"))
        for text in texts:
            assert flat(text) in shown, (path, text)
        if path.startswith("/agents?q="):
            typed = texts[0].replace("\n", "")  # a one-line input drops line breaks, as browsers do
            assert await page.input_value('input[name="q"]') == typed  # the box holds it as typed
        await watch.check(page, path)
        loaded += 1

    tree = f"/state/{corpus.chain[-1].id}/tree?full=1"
    await page.goto(base + tree)
    labels = await page.eval_on_selector_all("svg.tree tspan.label", "(ts) => ts.map((t) => t.textContent)")
    states = [corpus.chat_root, *corpus.chain]
    expected = family(states, corpus.messages, {})
    assert labels == [expected.members[s.id].label for s in states]  # SVG text exactly as computed
    titles = await page.eval_on_selector_all("svg.tree title", "(ts) => ts.map((t) => t.textContent)")
    assert all(title.endswith(label) for title, label in zip(titles, labels, strict=True))
    await watch.check(page, tree)
    if not bypass:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.goto(f"{base}/state/{corpus.chain[-1].id}")
        await page.screenshot(path=str(ARTIFACTS / "injection-state.png"))
    assert loaded == len(list(pages(corpus))) > 4 * len(PAYLOADS)
