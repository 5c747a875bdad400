"""An offline, scriptable model reached through LiteLLM's custom-provider mechanism.

``ScriptedModel().install()`` registers a LiteLLM custom provider named ``immagent``; the model name
``immagent/scripted`` (or ``immagent/<name>``) then answers from a queue of scripted replies, or from a
responder function when the queue is empty (by default it echoes the last user message). The library
never special-cases it: a call goes through ``litellm.acompletion`` exactly as with a real provider.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

PROVIDER = "immagent"


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted answer: text and/or tool calls (id, name, JSON arguments), token usage, a delay,
    or ``error`` (an HTTP-like status) to make the call fail."""

    content: str | None = "ok"
    tool_calls: tuple[tuple[str, str, str], ...] = ()
    input_tokens: int = 10
    output_tokens: int = 5
    delay: float = 0.0
    error: int | None = None


@dataclass
class ScriptedRequest:
    """What the model was asked: the messages and the settings LiteLLM passed on."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)


def echo(messages: Sequence[dict[str, Any]]) -> ScriptedReply:
    """The default responder: ``"echo: "`` + the last user message."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return ScriptedReply(content=f"echo: {message.get('content') or ''}")
    return ScriptedReply(content="echo:")


class ScriptedModel:
    """A model you script: queue replies with ``reply()``; read what was asked in ``requests``."""

    def __init__(
        self,
        name: str = "scripted",
        responder: Callable[[Sequence[dict[str, Any]]], ScriptedReply] | None = None,
    ) -> None:
        self.name = name
        self.responder = responder or echo
        self.requests: list[ScriptedRequest] = []
        self._queue: deque[ScriptedReply] = deque()
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        """The model name to give an agent: ``immagent/<name>``."""
        return f"{PROVIDER}/{self.name}"

    def reply(
        self,
        content: str | None = "ok",
        *,
        tool_calls: Sequence[tuple[str, str, str]] = (),
        input_tokens: int = 10,
        output_tokens: int = 5,
        delay: float = 0.0,
    ) -> ScriptedModel:
        """Queue one reply; returns self so calls chain."""
        with self._lock:
            self._queue.append(ScriptedReply(content, tuple(tool_calls), input_tokens, output_tokens, delay))
        return self

    def fail(self, status: int = 500) -> ScriptedModel:
        """Queue a failure with this HTTP status (429 and 5xx are retried, as a real provider's would be)."""
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

    def _next(self, request: ScriptedRequest) -> ScriptedReply:
        with self._lock:
            self.requests.append(request)
            if self._queue:
                return self._queue.popleft()
        return self.responder(request.messages)

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
