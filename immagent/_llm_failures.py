"""How a failed LiteLLM call is sorted (HTTP answer, credentials, timeout, connection, malformed body) and
what is done about it: a pause before the next attempt, or the one ``LLMError`` the caller sees.

Kept apart from the call itself (``immagent._llm``) because it is pure policy: it inspects exception chains
and headers and never calls the network.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import json
import logging
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from immagent._errors import LLMError

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "RETRY_AFTER_CAP",
    "Failure",
    "classify",
    "final_error",
    "pause_before_retry",
    "timeout_error",
]

logger = logging.getLogger("immagent")

#: First backoff delay and its cap, in seconds (the delay doubles per retry, with jitter).
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
#: The longest ``Retry-After`` honoured; a provider asking for more gets this.
RETRY_AFTER_CAP = 60.0

Kind = Literal["http", "auth", "timeout", "connection", "malformed", "other"]

_MISSING_KEY = re.compile(
    r"\b(missing|no|not set|not provided|must (be set|pass)|set the)\b.{0,60}(api[\s_-]?key|credential)"
    r"|(api[\s_-]?key|credential)s?\b.{0,40}(missing|not set|not provided|required)",
    re.IGNORECASE | re.DOTALL,
)
_PREFIX = re.compile(r"^(?:litellm\.)?\w+(?:Error|Exception|Timeout)?\s*(?::|-)\s+")


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong with one attempt, and whether another attempt can help."""

    kind: Kind
    status_code: int | None
    retry_after: float | None
    detail: str

    @property
    def retryable(self) -> bool:
        """Rate limits, server errors and connection failures are worth another attempt."""
        if self.kind == "connection":
            return True
        return (
            self.kind == "http"
            and self.status_code is not None
            and (self.status_code == 429 or self.status_code >= 500)
        )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes/contexts, outermost first (LiteLLM wraps the real error several times)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 32:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _root_module(exc: BaseException) -> str:
    return type(exc).__module__.partition(".")[0]


def _is_instance(exc: BaseException, module: ModuleType | None, *names: str) -> bool:
    """isinstance against classes looked up by name (the module may be absent)."""
    if module is None:
        return False
    classes = tuple(c for c in (getattr(module, n, None) for n in names) if isinstance(c, type))
    return bool(classes) and isinstance(exc, classes)


def _optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover - these ship with LiteLLM
        return None


def _http_answer(chain: list[BaseException]) -> tuple[int | None, Any]:
    """The status and headers of a real HTTP answer found in the chain (not one LiteLLM made up)."""
    httpx = _optional_module("httpx")
    openai = _optional_module("openai")
    for exc in chain:
        response: Any = getattr(exc, "response", None)
        if _is_instance(exc, httpx, "HTTPStatusError") and response is not None:
            return int(response.status_code), response.headers
        if _is_instance(exc, openai, "APIStatusError") and _root_module(exc) == "openai":
            return int(getattr(exc, "status_code", 0)) or None, getattr(response, "headers", None)
    for exc in chain:  # providers whose handlers keep only the headers of the answer
        headers = getattr(exc, "litellm_response_headers", None)
        status = getattr(exc, "status_code", None)
        if headers is not None and isinstance(status, int) and status >= 400:
            return status, headers
    return None, None


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)
        if value is None:
            value = headers.get(name.title())
    except AttributeError:
        return None
    return None if value is None else str(value)


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    milliseconds = _header(headers, "retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000.0)
        except ValueError:
            pass
    value = _header(headers, "retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _detail(exc: BaseException) -> str:
    """A short, single-paragraph description without LiteLLM's class-name prefixes and tracebacks."""
    text = str(exc).split("\nTraceback", 1)[0]
    for _ in range(4):
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    text = " ".join(text.split())
    return (text[:497] + "...") if len(text) > 500 else (text or type(exc).__name__)


def classify(exc: Exception, litellm: Any) -> Failure:
    """Sort a failed attempt into http / auth / timeout / connection / malformed / other."""
    chain = list(_chain(exc))
    detail = _detail(exc)
    status, headers = _http_answer(chain)
    if status is not None:
        auth = status == 401 or _is_instance(exc, litellm, "AuthenticationError")
        return Failure("auth" if auth else "http", status, _retry_after(headers), detail)
    httpx = _optional_module("httpx")
    openai = _optional_module("openai")
    aiohttp = _optional_module("aiohttp")
    if any(
        isinstance(e, TimeoutError)
        or _is_instance(e, openai, "APITimeoutError")
        or _is_instance(e, httpx, "TimeoutException")
        for e in chain
    ):
        return Failure("timeout", None, None, detail)
    if _is_instance(exc, litellm, "AuthenticationError") or any(_MISSING_KEY.search(str(e)) for e in chain):
        return Failure("auth", None, None, detail)
    if any(
        isinstance(e, ConnectionError)
        or (_is_instance(e, openai, "APIConnectionError") and _root_module(e) == "openai")
        or _is_instance(e, httpx, "TransportError")
        or _is_instance(e, aiohttp, "ClientConnectionError")
        for e in chain
    ):
        return Failure("connection", None, None, detail)
    if any(isinstance(e, json.JSONDecodeError) for e in chain) or "no 'choices'" in detail:
        return Failure("malformed", None, None, detail)
    return Failure("other", None, None, detail)


def _key_hint(model: str, litellm: Any) -> str:
    """Which environment variable holds the key for this model's provider (from LiteLLM's own tables)."""
    try:
        missing = [str(k) for k in litellm.validate_environment(model).get("missing_keys") or []]
    except Exception:
        missing = []
    keys = [k for k in missing if k.endswith(("_KEY", "_TOKEN"))] or missing
    if keys:
        return f"set the {' or '.join(keys)} environment variable"
    try:
        provider = str(litellm.get_llm_provider(model=model)[1])
    except Exception:
        return "check the API key environment variable of the model's provider"
    return f"check the {provider.upper()}_API_KEY environment variable"


def final_error(failure: Failure, *, model: str, timeout: float, attempts: int, litellm: Any) -> LLMError:
    """The LLMError for a failure that will not be retried."""
    if failure.kind == "timeout":
        return timeout_error(model, timeout)
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    where = f"LLM call to {model!r}"
    hint = None
    if failure.kind == "auth":
        hint = _key_hint(model, litellm)
        what = f"was refused{tries}: {failure.detail}"
        if failure.status_code is None:
            what = f"has no usable credentials: {failure.detail}"
    elif failure.kind == "http":
        what = f"failed with HTTP {failure.status_code}{tries}: {failure.detail}"
    elif failure.kind == "connection":
        what = f"had a connection error{tries}: {failure.detail}"
    elif failure.kind == "malformed":
        what = f"got a malformed response: {failure.detail}"
    else:
        what = f"failed: {failure.detail}"
    return LLMError(f"{where} {what}", model=model, status_code=failure.status_code, hint=hint)


def timeout_error(model: str, timeout: float) -> LLMError:
    return LLMError(f"LLM call to {model!r} timed out after {timeout:g} s", model=model)


def _backoff(retry: int, retry_after: float | None) -> float:
    """Delay before retry number ``retry`` (0-based): the server's wish, else capped exponential + jitter."""
    if retry_after is not None:
        return min(retry_after, RETRY_AFTER_CAP)
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0**retry)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


async def pause_before_retry(model: str, failure: Failure, retry: int, max_retries: int) -> None:
    delay = _backoff(retry, failure.retry_after)
    reason = f"HTTP {failure.status_code}" if failure.status_code is not None else failure.kind
    logger.warning(
        "LLM call to %r failed (%s: %s); retry %d/%d in %.2f s",
        model,
        reason,
        failure.detail,
        retry + 1,
        max_retries,
        delay,
    )
    await asyncio.sleep(delay)
