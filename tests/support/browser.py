"""A real browser for the inspector's tests: Debian's chromium driven by Playwright (no browser download),
and a watch on everything a page does that a safe page never does.

The browser is ``$IMMAGENT_TEST_CHROMIUM``, else ``chromium`` on the PATH, else ``/usr/bin/chromium``.
Without it the tests fail with one line saying how to install it; on a developer's machine (neither
``$CI`` nor ``$IMMAGENT_REQUIRE_BROWSER`` set) they are skipped with that line instead, never silently.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ARTIFACTS", "Watch", "chromium_or_explain", "launch"]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
#: Chromium's flags on this kind of machine (closed network, running as root, no GPU).
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL = "install Debian's chromium (`apt-get install -y chromium`, as root; .ci/run does it)"

# Run in every page before its own content: records any call a payload could make, and every
# Content-Security-Policy violation (a violation means markup got through the escaping).
WATCH_SCRIPT = """
window.__hits = [];
window.__pwned = (n) => { window.__hits.push(String(n)); };
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (x) => { window.__hits.push(name + ":" + String(x)); };
}
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});
"""

# What a page of the inspector is made of; anything else in the DOM came from stored text.
ALLOWED_TAGS = sorted(
    {"html", "head", "meta", "title", "link", "body", "header", "a", "nav", "span", "b", "main", "h1", "h2"}
    | {"h3", "p", "form", "input", "button", "table", "thead", "tbody", "tr", "th", "td", "dl", "dt", "dd"}
    | {"pre", "code", "div", "details", "summary", "article", "time", "section", "br"}
    | {"svg", "g", "path", "rect", "circle", "text", "tspan"}
)

AUDIT_SCRIPT = """
(allowed) => {
  const bad = [];
  const ok = new Set(allowed);
  for (const el of document.querySelectorAll("*")) {
    const tag = el.tagName.toLowerCase();
    if (!ok.has(tag)) bad.push("element " + tag);
    for (const a of el.attributes) {
      const name = a.name.toLowerCase();
      const value = a.value.trim().toLowerCase();
      if (name.startsWith("on")) bad.push(tag + " " + name);
      if (name === "style") bad.push(tag + " style");
      if (["href", "src", "action", "formaction", "xlink:href", "data", "srcdoc"].includes(name)
          && !(value.startsWith("/") || value.startsWith("#") || value.startsWith("?") || value === "")) {
        bad.push(tag + " " + name + "=" + value);
      }
    }
  }
  return bad;
}
"""


def chromium_or_explain() -> str:
    """The chromium executable; else fail (in CI) or skip (elsewhere) with one line saying why."""
    found = os.environ.get("IMMAGENT_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    problem = None
    if not os.access(found, os.X_OK):
        problem = f"the inspector's browser tests need chromium and found none at {found}: {INSTALL}"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            problem = "the inspector's browser tests need Playwright: pip install -e '.[dev]'"
    if problem is None:
        return found
    if os.environ.get("CI") or os.environ.get("IMMAGENT_REQUIRE_BROWSER"):
        pytest.fail(problem, pytrace=False)
    pytest.skip(problem)


@asynccontextmanager
async def launch(executable: str, profile: Path, *, bypass_csp: bool = False) -> AsyncIterator[Any]:
    """A fresh browser (its own new --user-data-dir) and its one context; CSP ignored with
    ``bypass_csp``, so that escaping alone is what keeps payloads inert."""
    from playwright.async_api import async_playwright

    async with async_playwright() as driver:
        context = await driver.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=ARGS,
            bypass_csp=bypass_csp,
            viewport={"width": 1200, "height": 560},
            accept_downloads=True,
        )
        await context.add_init_script(WATCH_SCRIPT)
        try:
            yield context
        finally:
            await context.close()


@dataclass
class Watch:
    """What a page did that it should not: console errors (CSP reports them there too), uncaught
    errors, dialogs, and requests anywhere but the inspector itself."""

    origin: str
    problems: list[str] = field(default_factory=list)
    expected_status: int | None = None  # the status of an error page the test asks for on purpose

    def attach(self, page: Any) -> Any:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("dialog", self._dialog)
        page.on("request", self._request)
        return page

    def _console(self, message: Any) -> None:
        expected = f"the server responded with a status of {self.expected_status}"
        if message.type in ("error", "warning") and not (self.expected_status and expected in message.text):
            self.problems.append(f"console {message.type}: {message.text}")

    async def _dialog(self, dialog: Any) -> None:
        self.problems.append(f"dialog {dialog.type}: {dialog.message}")
        await dialog.dismiss()

    def _request(self, request: Any) -> None:
        if not request.url.startswith(self.origin + "/"):
            self.problems.append(f"request to {request.url}")

    async def check(self, page: Any, where: str) -> None:
        """Nothing ran, nothing was blocked, nothing left the inspector, nothing foreign in the DOM."""
        hits = await page.evaluate("window.__hits")
        violations = await page.evaluate("window.__violations")
        bad = await page.evaluate(AUDIT_SCRIPT, ALLOWED_TAGS)
        scripts = await page.evaluate("document.scripts.length")
        found = [*self.problems, *(f"ran: {h}" for h in hits), *(f"CSP: {v}" for v in violations), *bad]
        if scripts:
            found.append(f"{scripts} script elements")
        self.problems.clear()
        self.expected_status = None
        assert not found, f"{where}: {found}"
