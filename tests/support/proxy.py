"""A TCP proxy on loopback, in a thread of its own, that can stop forwarding without closing anything.

``BlackholeProxy(upstream)`` listens on 127.0.0.1 and relays each connection to ``upstream`` (a
``(host, port)`` pair or a unix socket path). ``pause()`` models a network path that drops packets
silently (a cut cable, a dead NAT entry): no byte goes through in either direction and no FIN or RST is
sent, while new connections are accepted and held. ``resume()`` delivers everything held, as TCP's
retransmissions would once the path is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Future

from sqlalchemy.engine import make_url

__all__ = ["BlackholeProxy", "upstream_of", "url_through"]


class BlackholeProxy:
    """Relay 127.0.0.1:``port`` to ``upstream``; ``pause()`` and ``resume()`` the path."""

    def __init__(self, upstream: tuple[str, int] | str) -> None:
        self.upstream = upstream
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._open = asyncio.Event()  # set: forwarding; clear: the path is down
        self._thread = threading.Thread(target=self._loop.run_forever, name="blackhole-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self._relays: set[asyncio.Task[None]] = set()  # one per client connection, until its sockets close

    # -- control (from any thread)

    def start(self) -> BlackholeProxy:
        self._thread.start()
        self._call(self._start()).result(10)
        return self

    def pause(self) -> None:
        """Stop forwarding: bytes wait in the kernel's buffers, nothing is closed."""
        self._loop.call_soon_threadsafe(self._open.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._open.set)

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._stop()).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[BlackholeProxy]:
        self.start()
        try:
            yield self
        finally:
            self.close()

    # -- inside the proxy's loop

    def _call(self, coro: object) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]

    async def _start(self) -> None:
        self._open.set()
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        """Close the listener and every relayed connection, both sides, before the loop stops: a socket
        left to the garbage collector would be a ResourceWarning in whatever test runs then."""
        assert self._server is not None
        self._server.close()
        for task in [*self._pumps, *self._relays]:
            task.cancel()
        await asyncio.gather(*self._pumps, *self._relays, return_exceptions=True)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        self._relays.add(me)
        writers = [client_writer]
        try:
            await self._open.wait()  # a connection made while the path is down gets no answer until then
            if isinstance(self.upstream, str):
                server_reader, server_writer = await asyncio.open_unix_connection(self.upstream)
            else:
                server_reader, server_writer = await asyncio.open_connection(*self.upstream)
            writers.append(server_writer)
            pumps = [
                asyncio.create_task(self._pump(client_reader, server_writer)),
                asyncio.create_task(self._pump(server_reader, client_writer)),
            ]
            self._pumps.update(pumps)
            try:
                await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                self._pumps.difference_update(pumps)
        finally:
            self._relays.discard(me)
            for writer in writers:
                writer.close()
            for writer in writers:
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await self._open.wait()
            data = await reader.read(65536)
            await self._open.wait()  # read just before a pause: held until the path is back
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()


def upstream_of(url: str) -> tuple[str, int] | str:
    """Where a PostgreSQL or MySQL URL points: (host, port), or the unix socket's path."""
    parsed = make_url(url)
    host = parsed.query.get("host") or parsed.host or "127.0.0.1"
    assert isinstance(host, str)
    port = parsed.port or (5432 if parsed.get_backend_name() == "postgresql" else 3306)
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)


def url_through(url: str, proxy: BlackholeProxy) -> str:
    """``url`` pointed at ``proxy`` instead of the server."""
    parsed = make_url(url)
    query = {k: v for k, v in parsed.query.items() if k != "host"}
    return parsed.set(host="127.0.0.1", port=proxy.port, query=query).render_as_string(hide_password=False)
