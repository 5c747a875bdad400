"""The LiteLLM wrapper: one model call with immagent's own retries, timeout and error mapping.

Why a wrapper: LiteLLM and the OpenAI client both retry on their own, with their own policies; they are
switched off here (``num_retries=0``, ``max_retries=0``) so that one attempt is exactly one HTTP request
and ``max_retries`` means what the public API says. Every failure becomes an ``LLMError`` carrying the
model, the HTTP status of the provider's answer (``None`` when there was no answer: timeout, connection
failure, missing key) and, for credential problems, a hint naming the environment variable to set.

LiteLLM is imported on first use (``import immagent`` stays cheap). It is imported through ``importlib`` so
that the type checker does not analyse all of LiteLLM; the few attributes used here are typed at the
boundary. Before that first import the bundled model cost map and Anthropic beta-header table are selected
(``setdefault``: an explicit environment wins), so importing LiteLLM never reaches the network.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from immagent._errors import LLMError
from immagent._messages import ToolCall

__all__ = ["Completion", "StreamEvent", "TextDelta", "close_clients", "complete", "stream"]

logger = logging.getLogger("immagent")

#: First backoff delay and its cap, in seconds (the delay doubles per retry, with jitter).
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
#: The longest ``Retry-After`` honoured; a provider asking for more gets this.
RETRY_AFTER_CAP = 60.0
#: LiteLLM enforces ``timeout`` on the network; this module's own deadline, a little later, is a backstop
#: for providers that ignore it, and leaves room for LiteLLM's one-time setup work on a first call.
_GRACE = 1.0

#: Keyword arguments this module owns; a setting with one of these names is overridden.
_RESERVED = frozenset(
    {
        "model",
        "messages",
        "tools",
        "timeout",
        "stream",
        "stream_options",
        "num_retries",
        "max_retries",
        "retry_policy",
    }
)


@dataclass(frozen=True, slots=True)
class Completion:
    """The model's answer: text and/or tool calls, and the token usage the provider reported."""

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    input_tokens: int | None
    output_tokens: int | None
    #: Fields of the reply the projection has no place for (``_PROVIDER_FIELDS``), as JSON; None if none.
    provider_fields: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply's text as it streams in."""

    text: str


StreamEvent = TextDelta | Completion


# -- LiteLLM, imported once and quietly -------------------------------------------------------------------

_litellm: Any = None  # the litellm module; typed Any on purpose (see the module docstring)


def _load_litellm() -> Any:
    """Import LiteLLM on first use, with nothing fetched from the network and nothing printed."""
    global _litellm
    if _litellm is None:
        # Read before the import: LiteLLM loads the cost map while it is imported.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
        module: Any = importlib.import_module("litellm")
        module.suppress_debug_info = True  # no "Give Feedback / Get Help" banner printed on errors
        if module.disable_hf_tokenizer_download is None:
            module.disable_hf_tokenizer_download = True  # token counting uses bundled tiktoken files
        _litellm = module
    return _litellm


async def _litellm_module() -> Any:
    """LiteLLM, imported in a worker thread the first time: the import takes seconds and must not stall
    the event loop (other requests of the host application keep being served meanwhile)."""
    if _litellm is not None:
        return _litellm
    return await asyncio.to_thread(_load_litellm)


async def close_clients() -> None:
    """Close the HTTP sessions LiteLLM keeps open, on the running loop (call before that loop ends).

    LiteLLM caches its HTTP clients per event loop and only closes them at interpreter exit; closing them
    here avoids "unclosed transport" ResourceWarnings when a loop ends first (tests, ``asyncio.run``).
    Does nothing if LiteLLM was never used.
    """
    if _litellm is None:
        return
    cleanup = importlib.import_module("litellm.llms.custom_httpx.async_client_cleanup")
    await cleanup.close_litellm_async_clients()


# -- classifying failures -----------------------------------------------------------------------------------

Kind = Literal["http", "auth", "timeout", "connection", "malformed", "other"]

_MISSING_KEY = re.compile(
    r"\b(missing|no|not set|not provided|must (be set|pass)|set the)\b.{0,60}(api[\s_-]?key|credential)"
    r"|(api[\s_-]?key|credential)s?\b.{0,40}(missing|not set|not provided|required)",
    re.IGNORECASE | re.DOTALL,
)
_PREFIX = re.compile(r"^(?:litellm\.)?\w+(?:Error|Exception|Timeout)?\s*(?::|-)\s+")


@dataclass(frozen=True, slots=True)
class _Failure:
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


def _classify(exc: Exception, litellm: Any) -> _Failure:
    """Sort a failed attempt into http / auth / timeout / connection / malformed / other."""
    chain = list(_chain(exc))
    detail = _detail(exc)
    status, headers = _http_answer(chain)
    if status is not None:
        auth = status == 401 or _is_instance(exc, litellm, "AuthenticationError")
        return _Failure("auth" if auth else "http", status, _retry_after(headers), detail)
    httpx = _optional_module("httpx")
    openai = _optional_module("openai")
    aiohttp = _optional_module("aiohttp")
    if any(
        isinstance(e, TimeoutError)
        or _is_instance(e, openai, "APITimeoutError")
        or _is_instance(e, httpx, "TimeoutException")
        for e in chain
    ):
        return _Failure("timeout", None, None, detail)
    if _is_instance(exc, litellm, "AuthenticationError") or any(_MISSING_KEY.search(str(e)) for e in chain):
        return _Failure("auth", None, None, detail)
    if any(
        isinstance(e, ConnectionError)
        or (_is_instance(e, openai, "APIConnectionError") and _root_module(e) == "openai")
        or _is_instance(e, httpx, "TransportError")
        or _is_instance(e, aiohttp, "ClientConnectionError")
        for e in chain
    ):
        return _Failure("connection", None, None, detail)
    if any(isinstance(e, json.JSONDecodeError) for e in chain) or "no 'choices'" in detail:
        return _Failure("malformed", None, None, detail)
    return _Failure("other", None, None, detail)


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


def _final_error(failure: _Failure, *, model: str, timeout: float, attempts: int) -> LLMError:
    """The LLMError for a failure that will not be retried."""
    if failure.kind == "timeout":
        return _timeout_error(model, timeout)
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    where = f"LLM call to {model!r}"
    hint = None
    if failure.kind == "auth":
        hint = _key_hint(model, _load_litellm())
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


def _timeout_error(model: str, timeout: float) -> LLMError:
    return LLMError(f"LLM call to {model!r} timed out after {timeout:g} s", model=model)


def _backoff(retry: int, retry_after: float | None) -> float:
    """Delay before retry number ``retry`` (0-based): the server's wish, else capped exponential + jitter."""
    if retry_after is not None:
        return min(retry_after, RETRY_AFTER_CAP)
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0**retry)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


async def _pause_before_retry(model: str, failure: _Failure, retry: int, max_retries: int) -> None:
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


# -- requests and responses ----------------------------------------------------------------------------------


def _request(
    *,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    settings: Mapping[str, Any],
    timeout: float,
) -> dict[str, Any]:
    """The keyword arguments of ``litellm.acompletion``: settings first, then what this module owns."""
    kwargs: dict[str, Any] = {k: v for k, v in settings.items() if k not in _RESERVED}
    kwargs.update(model=model, messages=messages, timeout=timeout, num_retries=0, max_retries=0)
    if tools:
        kwargs["tools"] = tools
    return kwargs


def _field(obj: Any, name: str) -> Any:
    """An attribute of a LiteLLM object, or a key of a plain dict."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage(usage: Any) -> tuple[int | None, int | None]:
    if usage is None:
        return None, None
    return _int_or_none(_field(usage, "prompt_tokens")), _int_or_none(_field(usage, "completion_tokens"))


def _tool_call(call_id: Any, name: Any, arguments: Any) -> ToolCall:
    return ToolCall(
        id=str(call_id) if call_id else f"call_{uuid.uuid4().hex[:24]}",
        name=str(name or ""),
        arguments=str(arguments) if arguments else "{}",
    )


#: Fields of a reply's message that immagent keeps in its native form (thinking with its signatures, and
#: reasoning text), so that what the provider needs sent back can be (``Message.to_llm``).
_PROVIDER_FIELDS = ("thinking_blocks", "reasoning_content")


def _provider_fields(message: Any) -> dict[str, Any] | None:
    """The reply's provider fields as plain JSON (one that is not JSON is dropped, with a warning)."""
    found: dict[str, Any] = {}
    for name in _PROVIDER_FIELDS:
        value = _field(message, name)
        if not value:
            continue
        try:
            found[name] = json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError) as exc:
            logger.warning("the reply's %s is not JSON and is not kept: %s", name, exc)
    return found or None


def _parse(response: Any, model: str) -> Completion:
    """A Completion from a LiteLLM ModelResponse; LLMError when it has no usable choice."""
    try:
        choices = _field(response, "choices")
        if not choices:
            raise LLMError(f"LLM call to {model!r} got a malformed response: no choices", model=model)
        message = _field(choices[0], "message")
        if message is None:
            raise LLMError(f"LLM call to {model!r} got a malformed response: no message", model=model)
        content = _field(message, "content")
        calls = tuple(
            _tool_call(_field(call, "id"), _field(function, "name"), _field(function, "arguments"))
            for call in (_field(message, "tool_calls") or ())
            for function in (_field(call, "function"),)
        )
        input_tokens, output_tokens = _usage(_field(response, "usage"))
        provider_fields = _provider_fields(message)
    except LLMError:
        raise
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise LLMError(f"LLM call to {model!r} got a malformed response: {exc}", model=model) from exc
    return Completion(
        content=content if isinstance(content, str) else None,
        tool_calls=calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        provider_fields=provider_fields,
    )


# -- the two entry points ------------------------------------------------------------------------------------


async def complete(
    *,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    settings: Mapping[str, Any],
    timeout: float,
    max_retries: int,
) -> Completion:
    """Call the model once (plus up to ``max_retries`` retries) and return its answer.

    Retries rate limits (429), server errors (5xx) and connection failures with exponential backoff, or
    after the provider's ``Retry-After``. Timeouts, credential errors, other 4xx and malformed answers are
    not retried. ``timeout`` bounds each attempt. Raises LLMError; cancellation propagates as is.
    """
    litellm = await _litellm_module()
    kwargs = _request(model=model, messages=messages, tools=tools, settings=settings, timeout=timeout)
    retries = max(0, max_retries)
    for attempt in range(retries + 1):
        try:
            async with asyncio.timeout(timeout + _GRACE):
                response = await litellm.acompletion(**kwargs)
        except TimeoutError as exc:  # our own deadline (LiteLLM's timeout arrives as its Timeout class)
            raise _timeout_error(model, timeout) from exc
        except Exception as exc:
            failure = _classify(exc, litellm)
            if failure.retryable and attempt < retries:
                await _pause_before_retry(model, failure, attempt, retries)
                continue
            raise _final_error(failure, model=model, timeout=timeout, attempts=attempt + 1) from exc
        return _parse(response, model)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


class _StreamAssembler:
    """Collects stream chunks into text deltas and, at the end, one Completion."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None

    def add(self, chunk: Any) -> str | None:
        """Take one chunk; return its text delta, if any."""
        usage = _field(chunk, "usage")
        if usage is not None:
            self.input_tokens, self.output_tokens = _usage(usage)
        choices = _field(chunk, "choices") or ()
        if not choices:
            return None
        delta = _field(choices[0], "delta")
        if delta is None:
            return None
        for position, call in enumerate(_field(delta, "tool_calls") or ()):
            index = _field(call, "index")
            slot = self.calls.setdefault(
                index if isinstance(index, int) else position, {"id": "", "name": "", "arguments": ""}
            )
            function = _field(call, "function")
            if _field(call, "id"):
                slot["id"] = str(_field(call, "id"))
            if function is not None:
                if _field(function, "name"):
                    slot["name"] = str(_field(function, "name"))
                slot["arguments"] += str(_field(function, "arguments") or "")
        text = _field(delta, "content")
        if isinstance(text, str) and text:
            self.text.append(text)
            return text
        return None

    def completion(self) -> Completion:
        calls = tuple(
            _tool_call(slot["id"], slot["name"], slot["arguments"]) for _, slot in sorted(self.calls.items())
        )
        return Completion(
            content="".join(self.text) if self.text else None,
            tool_calls=calls,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
        )


async def _close(response: Any) -> None:
    """Close a LiteLLM stream (releases the HTTP connection); errors while closing are irrelevant."""
    aclose = getattr(response, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        logger.debug("closing the LLM stream failed", exc_info=True)


async def stream(
    *,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    settings: Mapping[str, Any],
    timeout: float,
    max_retries: int,
) -> AsyncIterator[StreamEvent]:
    """Stream the model's answer: a TextDelta per piece of text, then one Completion with everything.

    Same retries and error mapping as :func:`complete`, but retries happen only before the first chunk
    (after that, text has been handed out). ``timeout`` bounds the wait for each chunk, the first included.
    """
    litellm = await _litellm_module()
    kwargs = _request(model=model, messages=messages, tools=tools, settings=settings, timeout=timeout)
    kwargs.update(stream=True, stream_options={"include_usage": True})
    retries = max(0, max_retries)
    response: Any = None
    first: Any = None
    for attempt in range(retries + 1):
        try:
            async with asyncio.timeout(timeout + _GRACE):
                response = await litellm.acompletion(**kwargs)
                first = await anext(aiter(response), None)
        except TimeoutError as exc:
            await _close(response)
            raise _timeout_error(model, timeout) from exc
        except Exception as exc:
            await _close(response)
            response = None
            failure = _classify(exc, litellm)
            if failure.retryable and attempt < retries:
                await _pause_before_retry(model, failure, attempt, retries)
                continue
            raise _final_error(failure, model=model, timeout=timeout, attempts=attempt + 1) from exc
        except BaseException:  # cancellation: release the connection, then let it propagate untouched
            await _close(response)
            raise
        break

    if first is None:
        await _close(response)
        raise LLMError(f"LLM call to {model!r} got a malformed response: an empty stream", model=model)

    assembler = _StreamAssembler()
    iterator = aiter(response)
    try:
        chunk = first
        while chunk is not None:
            text = assembler.add(chunk)
            if text is not None:
                yield TextDelta(text)
            try:
                async with asyncio.timeout(timeout + _GRACE):
                    chunk = await anext(iterator, None)
            except TimeoutError as exc:
                raise _timeout_error(model, timeout) from exc
            except Exception as exc:
                raise _final_error(_classify(exc, litellm), model=model, timeout=timeout, attempts=1) from exc
    finally:
        await _close(response)
    yield assembler.completion()
