"""An offline, scriptable model reached through LiteLLM's custom-provider mechanism.

``ScriptedModel().install()`` registers a LiteLLM custom provider named ``immagent``; the model name
``immagent/scripted`` (or ``immagent/<name>``) then answers from a queue of scripted replies, or from a
responder function when the queue is empty (by default it echoes the last user message). The library
never special-cases it: a call goes through ``litellm.acompletion`` exactly as with a real provider.

Every helper checks its arguments when it is called (``TypeError`` for a wrong type, ``ValueError`` for a
value out of range, each naming the right usage), so a mistake in a test fails on its own line instead of
later, inside a turn, as an ``LLMError``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

PROVIDER = "immagent"


#: How a tool call is written, for the errors that refuse another form.
_TOOL_CALL_USAGE = (
    "(id, name, arguments_json) tuples of str, e.g. ('call_1', 'get_weather', '{\"city\": \"Paris\"}')"
)


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted answer: text and/or tool calls (id, name, JSON arguments), token usage, a delay,
    or ``error`` (an HTTP-like status) to make the call fail. Checked when made; a list of tool calls
    is kept as a tuple."""

    content: str | None = "ok"
    tool_calls: tuple[tuple[str, str, str], ...] = ()
    input_tokens: int = 10
    output_tokens: int = 5
    delay: float = 0.0
    error: int | None = None

    def __post_init__(self) -> None:
        if self.content is not None and not isinstance(self.content, str):
            raise TypeError(
                f"content: the reply's text must be a str (or None with tool_calls), "
                f"got {type(self.content).__name__}"
            )
        object.__setattr__(self, "tool_calls", _checked_tool_calls(self.tool_calls))
        _check_count("input_tokens", self.input_tokens)
        _check_count("output_tokens", self.output_tokens)
        if isinstance(self.delay, bool) or not isinstance(self.delay, int | float):
            raise TypeError(f"delay: seconds as a number, e.g. delay=0.5, got {type(self.delay).__name__}")
        if not (math.isfinite(self.delay) and self.delay >= 0):
            raise ValueError(f"delay: seconds must be finite and >= 0, got {self.delay!r}")
        if self.error is not None:
            _check_status(self.error)


def _checked_tool_calls(calls: Any) -> tuple[tuple[str, str, str], ...]:
    """``calls`` as a tuple of (id, name, arguments_json) tuples; a TypeError naming the form otherwise."""
    if isinstance(calls, str | bytes | dict) or not isinstance(calls, Sequence):
        raise TypeError(f"tool_calls: a list of {_TOOL_CALL_USAGE}; got {type(calls).__name__}")
    checked: list[tuple[str, str, str]] = []
    for call in calls:
        if (
            isinstance(call, str)
            or not isinstance(call, Sequence)
            or len(call) != 3
            or not all(isinstance(part, str) for part in call)
        ):
            dict_arguments = isinstance(call, tuple | list) and len(call) == 3 and isinstance(call[2], dict)
            hint = " (the arguments are JSON text: json.dumps(...))" if dict_arguments else ""
            raise TypeError(f"tool_calls: each call is one of {_TOOL_CALL_USAGE}{hint}; got {call!r}")
        checked.append((call[0], call[1], call[2]))
    return tuple(checked)


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: a whole number of tokens, e.g. {name}=12, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name}: must be >= 0, got {value}")


def _check_status(status: Any) -> None:
    if isinstance(status, bool) or not isinstance(status, int):
        raise TypeError(
            f"status: an HTTP error status as an int, e.g. fail(429), got {type(status).__name__}"
        )
    if not 400 <= status <= 599:
        raise ValueError(f"status: an HTTP error status from 400 to 599, e.g. fail(503), got {status}")


@dataclass
class ScriptedRequest:
    """What the model was asked: the messages and the settings LiteLLM passed on."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tools offered with the request (OpenAI function definitions; empty when none)."""
        return list(self.params.get("tools") or [])


def echo(messages: Sequence[dict[str, Any]]) -> ScriptedReply:
    """The default responder: ``"echo: "`` + the last user message."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return ScriptedReply(content=f"echo: {message.get('content') or ''}")
    return ScriptedReply(content="echo:")


Responder = Callable[[Sequence[dict[str, Any]]], ScriptedReply]

#: ``reply()``'s token and delay defaults, so a keyword given beside a ScriptedReply is caught.
_REPLY_DEFAULTS = (10, 5, 0.0)


class ScriptedModel:
    """A model you script: queue replies with ``reply()``; read what was asked in ``requests``.

    When nothing is queued, ``respond(request)`` answers: by default ``responder(request.messages)``.
    Subclass and override ``respond`` to see the whole request (its tools and settings too).
    """

    def __init__(self, name: str = "scripted", responder: Responder | None = None) -> None:
        if not isinstance(name, str):
            hint = " (pass a responder as ScriptedModel(responder=fn))" if callable(name) else ""
            raise TypeError(f"name: a str such as 'scripted', got {type(name).__name__}{hint}")
        if not name.strip():
            raise ValueError(f"name: a non-empty name such as 'scripted', got {name!r}")
        self.name = name
        self.responder = echo if responder is None else responder
        self.requests: list[ScriptedRequest] = []
        self._queue: deque[ScriptedReply] = deque()
        self._lock = threading.Lock()

    @property
    def responder(self) -> Responder:
        """The function that answers when nothing is queued: ``fn(messages) -> ScriptedReply``."""
        return self._responder

    @responder.setter
    def responder(self, responder: Responder) -> None:
        if not callable(responder):
            raise TypeError(
                f"responder: a function fn(messages) -> ScriptedReply, got {type(responder).__name__}"
            )
        self._responder = responder

    @property
    def model(self) -> str:
        """The model name to give an agent: ``immagent/<name>``."""
        return f"{PROVIDER}/{self.name}"

    def reply(
        self,
        content: str | ScriptedReply | None = "ok",
        *,
        tool_calls: Sequence[tuple[str, str, str]] = (),
        input_tokens: int = 10,
        output_tokens: int = 5,
        delay: float = 0.0,
    ) -> ScriptedModel:
        """Queue one reply, given as its text and keywords or as one ``ScriptedReply``; returns self so
        calls chain."""
        if isinstance(content, ScriptedReply):
            if tool_calls or (input_tokens, output_tokens, delay) != _REPLY_DEFAULTS:
                raise TypeError(
                    "reply() takes a ScriptedReply alone; put tool_calls, tokens and delay inside it"
                )
            queued = content
        elif content is None or isinstance(content, str):
            queued = ScriptedReply(
                content, _checked_tool_calls(tool_calls), input_tokens, output_tokens, delay
            )
        else:
            raise TypeError(
                "reply() takes the reply's text (a str, or None with tool_calls=...) or a ScriptedReply, "
                f"got {type(content).__name__}"
            )
        with self._lock:
            self._queue.append(queued)
        return self

    def fail(self, status: int = 500) -> ScriptedModel:
        """Queue a failure with this HTTP status (429 and 5xx are retried, as a real provider's would be)."""
        _check_status(status)
        with self._lock:
            self._queue.append(ScriptedReply(content=None, error=status))
        return self

    def reset(self) -> None:
        """Forget queued replies and recorded requests."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()

    @property
    def pending(self) -> int:
        """How many queued replies are left."""
        return len(self._queue)

    def respond(self, request: ScriptedRequest) -> ScriptedReply:
        """The answer when nothing is queued: ``responder(request.messages)``. Override it in a subclass
        to answer from the whole request (``request.tools``, ``request.params``)."""
        return self.responder(request.messages)

    def _next(self, request: ScriptedRequest) -> ScriptedReply:
        with self._lock:
            self.requests.append(request)
            if self._queue:
                return self._queue.popleft()
        reply = self.respond(request)
        if not isinstance(reply, ScriptedReply):
            raise TypeError(
                f"the responder of ScriptedModel({self.name!r}) returned {type(reply).__name__}, "
                "not a ScriptedReply: return ScriptedReply(content=...)"
            )
        return reply

    def install(self) -> ScriptedModel:
        """Register this model with LiteLLM (idempotent); returns self."""
        _registry()[self.name] = self
        _ensure_provider()
        _register_cost(self.model)
        return self

    def uninstall(self) -> None:
        """Stop answering under this name."""
        _registry().pop(self.name, None)


_MODELS: dict[str, ScriptedModel] = {}
_ids = itertools.count(1)


def _registry() -> dict[str, ScriptedModel]:
    return _MODELS


def _ensure_provider() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    if any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
        return
    litellm.custom_provider_map = [
        *litellm.custom_provider_map,
        {"provider": PROVIDER, "custom_handler": _make_handler()},
    ]
    from litellm.utils import custom_llm_setup

    custom_llm_setup()


def _register_cost(model: str) -> None:
    """Tell LiteLLM the model is free, so it does not scan its cost map on every call."""
    import litellm

    if model not in litellm.model_cost:
        litellm.register_model(
            {
                model: {
                    "litellm_provider": PROVIDER,
                    "mode": "chat",
                    "max_tokens": 1_000_000,
                    "input_cost_per_token": 0.0,
                    "output_cost_per_token": 0.0,
                    "cache_creation_input_token_cost": 0.0,
                    "cache_read_input_token_cost": 0.0,
                }
            }
        )


def _lookup(model: str) -> ScriptedModel:
    name = model.split("/", 1)[1] if model.startswith(f"{PROVIDER}/") else model
    scripted = _MODELS.get(name)
    if scripted is None:
        from litellm.llms.custom_llm import CustomLLMError

        raise CustomLLMError(404, f"no scripted model named {name!r} is installed")
    return scripted


def _tool_calls(reply: ScriptedReply) -> list[dict[str, Any]]:
    return [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        for call_id, name, arguments in reply.tool_calls
    ]


def _http_error(status: int) -> Exception:
    """An HTTP answer with this status, as a real provider's client raises it: the library reads the status
    from it (429 and 5xx are retried, 401 is an auth failure), exactly as with a real model."""
    import httpx

    request = httpx.Request("POST", "http://scripted.invalid/chat/completions")
    response = httpx.Response(status, request=request, json={"error": {"message": "scripted failure"}})
    return httpx.HTTPStatusError(f"scripted failure ({status})", request=request, response=response)


def _make_handler() -> Any:
    """The LiteLLM CustomLLM subclass (built lazily so importing this module stays cheap)."""
    import litellm
    from litellm.llms.custom_llm import CustomLLM, CustomLLMError

    async def answer(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> ScriptedReply:
        scripted = _lookup(model)
        reply = scripted._next(ScriptedRequest(model=model, messages=messages, params=dict(params)))
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.error is not None:
            raise CustomLLMError(reply.error, f"scripted failure ({reply.error})") from _http_error(
                reply.error
            )
        return reply

    class ScriptedHandler(CustomLLM):
        async def acompletion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
            reply = await answer(model, messages, kwargs.get("optional_params") or {})
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.tool_calls:
                message["tool_calls"] = _tool_calls(reply)
            return litellm.ModelResponse(
                id=f"scripted-{next(_ids)}",
                created=int(time.time()),
                model=model,
                choices=[
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                    }
                ],
                usage={
                    "prompt_tokens": reply.input_tokens,
                    "completion_tokens": reply.output_tokens,
                    "total_tokens": reply.input_tokens + reply.output_tokens,
                },
            )

        async def astreaming(  # type: ignore[override]
            self, model: str, messages: list[Any], *args: Any, **kwargs: Any
        ) -> AsyncIterator[dict[str, Any]]:
            reply = await answer(model, messages, kwargs.get("optional_params") or {})
            words = (reply.content or "").split(" ")
            pieces = (
                [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
                if reply.content
                else []
            )
            for piece in pieces:
                yield {
                    "text": piece,
                    "tool_use": None,
                    "is_finished": False,
                    "finish_reason": "",
                    "usage": None,
                    "index": 0,
                }
            for index, call in enumerate(_tool_calls(reply)):
                yield {
                    "text": "",
                    "tool_use": {**call, "index": index},
                    "is_finished": False,
                    "finish_reason": "",
                    "usage": None,
                    "index": 0,
                }
            yield {
                "text": "",
                "tool_use": None,
                "is_finished": True,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                "usage": {
                    "prompt_tokens": reply.input_tokens,
                    "completion_tokens": reply.output_tokens,
                    "total_tokens": reply.input_tokens + reply.output_tokens,
                },
                "index": 0,
            }

    return ScriptedHandler()
