"""Where a turn's time goes: LiteLLM's call, LiteLLM's background logging, and immagent's own CPU.

``LiteLLMMeter`` wraps (never replaces) ``litellm.acompletion`` and LiteLLM's success handler for the
duration of a ``with`` block. It adds up the wall time of each call, and the main thread's CPU time of
every step of those coroutines (``StepCPU`` times each ``send`` into the coroutine, so what other tasks
run while it waits is not counted). A turn's own CPU is the CPU time of the turn's own steps less its
LiteLLM call's; database round trips cost no CPU time while they wait (SQLite's work runs in aiosqlite's
thread), so what is left is immagent's, SQLAlchemy's and the driver's own work in this process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Generator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

#: A pause after each measured turn for LiteLLM's background logging (its task and its executor thread).
SETTLE_S = 0.005


class StepCPU:
    """Await ``coroutine``, adding the main thread's CPU time of each of its steps to ``meter.cpu``."""

    def __init__(self, coroutine: Coroutine[Any, Any, Any], add: Callable[[float], None]) -> None:
        self.coroutine = coroutine
        self.add = add

    def __await__(self) -> Generator[Any, Any, Any]:
        value: Any = None
        error: BaseException | None = None
        while True:
            started = time.thread_time()
            try:
                yielded = self.coroutine.send(value) if error is None else self.coroutine.throw(error)
            except StopIteration as done:
                self.add(time.thread_time() - started)
                return done.value
            except BaseException:
                self.add(time.thread_time() - started)
                raise
            self.add(time.thread_time() - started)
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # a cancellation or error thrown into the wait: pass it on
                value, error = None, exc


@dataclass
class LiteLLMMeter(AbstractContextManager["LiteLLMMeter"]):
    """Totals since the block began: calls, their wall time, and LiteLLM's CPU in calls and logging."""

    calls: int = 0
    call_wall: float = 0.0
    call_cpu: float = 0.0
    logging_cpu: float = 0.0

    def __enter__(self) -> LiteLLMMeter:
        import litellm
        from litellm.litellm_core_utils.litellm_logging import Logging

        self._litellm, self._logging = litellm, Logging
        self._acompletion = litellm.acompletion
        self._handler = Logging.async_success_handler
        original, handler = self._acompletion, self._handler

        async def acompletion(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await StepCPU(original(*args, **kwargs), self._add_call)
            finally:
                self.calls += 1
                self.call_wall += time.perf_counter() - started

        async def success(logging: Any, *args: Any, **kwargs: Any) -> Any:
            return await StepCPU(handler(logging, *args, **kwargs), self._add_logging)

        litellm.acompletion = acompletion
        Logging.async_success_handler = success  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self._litellm.acompletion = self._acompletion
        self._logging.async_success_handler = self._handler

    def _add_call(self, seconds: float) -> None:
        self.call_cpu += seconds

    def _add_logging(self, seconds: float) -> None:
        self.logging_cpu += seconds

    def snapshot(self) -> tuple[int, float, float, float]:
        return self.calls, self.call_wall, self.call_cpu, self.logging_cpu


@dataclass(frozen=True)
class TurnCost:
    """One awaited turn: wall time, immagent's own CPU, LiteLLM's call (wall and CPU), its logging CPU."""

    wall: float
    own_cpu: float
    litellm_wall: float
    litellm_cpu: float
    litellm_logging_cpu: float


async def measured(meter: LiteLLMMeter, work: Callable[[], Coroutine[Any, Any, Any]]) -> tuple[TurnCost, Any]:
    """Run ``work`` once and split its cost: its own CPU is the CPU of its steps (other tasks that run
    while it waits, such as LiteLLM's logging, are not counted) less LiteLLM's call, which it awaits.
    Then wait a little, so LiteLLM's background work of this turn does not land in the next one.
    Returns the cost and what ``work`` returned."""
    _, wall0, call_cpu0, log_cpu0 = meter.snapshot()
    steps = [0.0]

    def add(seconds: float) -> None:
        steps[0] += seconds

    started = time.perf_counter()
    result = await StepCPU(work(), add)
    wall = time.perf_counter() - started
    _, wall1, call_cpu1, _ = meter.snapshot()
    await asyncio.sleep(SETTLE_S)
    log_cpu1 = meter.snapshot()[3]
    call_cpu = call_cpu1 - call_cpu0
    return TurnCost(wall, steps[0] - call_cpu, wall1 - wall0, call_cpu, log_cpu1 - log_cpu0), result
