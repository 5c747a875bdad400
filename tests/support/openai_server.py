"""A scripted OpenAI-compatible chat-completions server for tests.

The server runs on 127.0.0.1 (a free port) in a background thread and answers
``POST /v1/chat/completions`` with whatever the test queued: replies (text and/or tool calls, token usage,
delays), HTTP errors with OpenAI-style bodies (429 with ``Retry-After``, 500, 401, ...), malformed bodies and
slow replies for client timeouts. Each request is served on its own thread, so concurrent requests with
scripted delays run in parallel. When the queue is empty, ``default`` decides (it echoes the last user message
unless a test sets it). ``"stream": true`` requests get server-sent events shaped like OpenAI's.

Pointing LiteLLM at it (what ``tests.support.fixtures`` does for a session)::

    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before importing litellm: no cost-map download
    os.environ["OPENAI_API_KEY"] = "sk-test"  # any value; litellm refuses to call without one
    os.environ["OPENAI_BASE_URL"] = server.base_url  # litellm reads OPENAI_BASE_URL, then OPENAI_API_BASE
    os.environ["OPENAI_API_BASE"] = server.base_url
    await litellm.acompletion(model="gpt-4o-mini", ...)  # or "openai/<anything>"

Example::

    with ScriptedOpenAIServer() as server:
        server.fail(429, retry_after=0)
        server.reply("hello", input_tokens=7, output_tokens=2)
        ...
        assert len(server.requests) == 2
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["Reply", "ScriptedOpenAIServer", "echo_reply"]

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer.

    ``status`` 200 with ``body`` None is a chat completion built from ``content``/``tool_calls``/usage;
    ``status`` >= 400 is an OpenAI-style error (``message``, optional ``retry_after`` header); a non-None
    ``body`` is sent verbatim (malformed replies). ``delay`` is slept before anything is sent;
    ``chunk_delay`` separates stream chunks.
    """

    content: str | None = "ok"
    tool_calls: tuple[tuple[str, str, str], ...] = ()
    input_tokens: int = 10
    output_tokens: int = 5
    delay: float = 0.0
    chunk_delay: float = 0.0
    status: int = 200
    message: str = ""
    retry_after: float | None = None
    body: bytes | None = None


def _text_of(content: Any) -> str:
    """The text of a message ``content``: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def echo_reply(request: dict[str, Any]) -> Reply:
    """The default answer: ``"echo: "`` + the content of the last user message."""
    messages = request.get("messages") or []
    last_user = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), None)
    return Reply(content="echo: " + (_text_of(last_user.get("content")) if last_user else ""))


def _split_words(text: str) -> list[str]:
    """Split text into word-sized pieces whose concatenation is the text (stream deltas)."""
    return re.findall(r"\s*\S+\s*|\s+", text) or [text]


def _split_arguments(arguments: str) -> list[str]:
    """Split tool-call arguments into a few pieces, as OpenAI streams them."""
    if len(arguments) <= 4:
        return [arguments]
    step = max(1, len(arguments) // 3)
    return [arguments[i : i + step] for i in range(0, len(arguments), step)]


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks open connections so ``stop()`` can close keep-alive sockets."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, scripted: ScriptedOpenAIServer) -> None:
        self.scripted = scripted
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a timeout, an abandoned stream) is expected; anything else is printed."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the owning ScriptedOpenAIServer."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/").split("?")[0] != "/v1/chat/completions":
            self._send_json(
                404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}}
            )
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        scripted = self.server.scripted
        reply = scripted._take(body, dict(self.headers.items()))
        try:
            self._answer(body, reply)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            # The client gave up (a timeout or a cancelled stream): nothing left to send.
            self.close_connection = True

    def _answer(self, body: dict[str, Any], reply: Reply) -> None:
        scripted = self.server.scripted
        if reply.delay > 0 and scripted._sleep(reply.delay):
            self.close_connection = True
            return
        if reply.body is not None:
            self._send_raw(reply.status, reply.body, "application/json")
            return
        if reply.status >= 400:
            self._send_error(reply)
            return
        model = str(body.get("model") or "unknown")
        if body.get("stream") is True:
            options = body.get("stream_options") or {}
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            self._send_stream(model, reply, include_usage)
        else:
            self._send_json(200, scripted._completion(model, reply))

    def _send_raw(
        self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_error(self, reply: Reply) -> None:
        kind, code = _ERROR_TYPES.get(
            reply.status, ("server_error" if reply.status >= 500 else "api_error", None)
        )
        payload = {"error": {"message": reply.message, "type": kind, "param": None, "code": code}}
        headers: dict[str, str] = {}
        if reply.retry_after is not None:
            headers["Retry-After"] = f"{reply.retry_after:g}"
            headers["retry-after-ms"] = str(int(reply.retry_after * 1000))
        self._send_json(reply.status, payload, headers)

    def _send_stream(self, model: str, reply: Reply, include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        scripted = self.server.scripted
        for index, chunk in enumerate(scripted._chunks(model, reply, include_usage)):
            if index and reply.chunk_delay > 0 and scripted._sleep(reply.chunk_delay):
                self.close_connection = True
                return
            self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        """One HTTP/1.1 chunk (an empty one ends the body)."""
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class ScriptedOpenAIServer:
    """An OpenAI-compatible chat-completions server whose answers the test scripts in order.

    Queue answers with :meth:`reply`, :meth:`fail`, :meth:`malformed` and :meth:`hang`; each request takes
    the next one (or ``default(request)`` when the queue is empty, else the echo reply). Every JSON body
    received is appended to :attr:`requests` in arrival order.
    """

    base_url: str
    requests: list[dict[str, Any]]
    request_headers: list[dict[str, str]]
    default: Callable[[dict[str, Any]], Reply] | None

    def __init__(self) -> None:
        self.base_url = ""
        self.requests = []
        self.request_headers = []
        self.default = None
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> ScriptedOpenAIServer:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self)
        port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="scripted-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- scripting -------------------------------------------------------------------------------------

    def enqueue(self, reply: Reply) -> None:
        """Queue a prepared :class:`Reply`."""
        with self._lock:
            self._queue.append(reply)

    def reply(
        self,
        content: str | None = "ok",
        *,
        tool_calls: list[tuple[str, str, str]] | None = None,
        input_tokens: int = 10,
        output_tokens: int = 5,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> None:
        """Queue a successful completion; ``tool_calls`` are ``(id, name, arguments_json)`` triples."""
        self.enqueue(
            Reply(
                content=content,
                tool_calls=tuple(tool_calls or ()),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                delay=delay,
                chunk_delay=chunk_delay,
            )
        )

    def fail(
        self,
        status: int,
        message: str = "scripted failure",
        *,
        retry_after: float | None = None,
        delay: float = 0.0,
    ) -> None:
        """Queue an HTTP error with an OpenAI-style body (and a ``Retry-After`` header when given)."""
        if status < 400:
            raise ValueError(f"fail() needs an error status, got {status}")
        self.enqueue(
            Reply(content=None, status=status, message=message, retry_after=retry_after, delay=delay)
        )

    def malformed(self, body: bytes = b"{not json", *, status: int = 200) -> None:
        """Queue a broken body, sent verbatim as ``application/json``."""
        self.enqueue(Reply(content=None, status=status, body=body))

    def hang(self, seconds: float) -> None:
        """Queue a reply that sleeps ``seconds`` and then answers ``"late"`` (for client timeouts)."""
        self.enqueue(Reply(content="late", delay=seconds))

    def reset(self) -> None:
        """Forget queued replies, recorded requests and the ``default`` callable."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.request_headers.clear()
            self.default = None

    @property
    def pending(self) -> int:
        """How many queued replies have not been used yet."""
        with self._lock:
            return len(self._queue)

    @property
    def last_request(self) -> dict[str, Any]:
        """The most recent request body; AssertionError when nothing was received."""
        with self._lock:
            if not self.requests:
                raise AssertionError("the scripted OpenAI server has received no request")
            return self.requests[-1]

    # -- used by the handler threads -------------------------------------------------------------------

    def _take(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        """Record the request and pick its reply (queue first, then default, then echo)."""
        with self._lock:
            self.requests.append(body)
            self.request_headers.append(headers)
            if self._queue:
                return self._queue.popleft()
            default = self.default
        return (default or echo_reply)(body)

    def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early when the server stops; True if it stopped."""
        return self._stopping.wait(seconds)

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}-scripted{next(self._ids):06d}"

    @staticmethod
    def _usage(reply: Reply) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }

    def _completion(self, model: str, reply: Reply) -> dict[str, Any]:
        """A non-streaming ``chat.completion`` object."""
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
                for call_id, name, arguments in reply.tool_calls
            ]
        return {
            "id": self._next_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_scripted",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": self._usage(reply),
        }

    def _chunks(self, model: str, reply: Reply, include_usage: bool) -> Iterator[dict[str, Any]]:
        """The ``chat.completion.chunk`` objects of a streamed reply, in order."""
        chunk_id = self._next_id("chatcmpl")
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_scripted",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                out["usage"] = None
            return out

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        if reply.content:
            for piece in _split_words(reply.content):
                yield chunk({"content": piece})
        for index, (call_id, name, arguments) in enumerate(reply.tool_calls):
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
            for piece in _split_arguments(arguments):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
        if include_usage:
            yield {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_scripted",
                "choices": [],
                "usage": self._usage(reply),
            }
