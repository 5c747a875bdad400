"""SimpleAgent: the in-memory agent. Same pure core as PersistentAgent, no database, no ids of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from immagent import _advance as core
from immagent import _validation as check
from immagent import limits
from immagent._advance import ToolProvider, Turn, TurnComplete, TurnEvent, TurnOptions, TurnResult
from immagent._messages import Message


class SimpleAgent(BaseModel):
    """An immutable agent held in memory: ``advance`` returns a new SimpleAgent, this one is unchanged."""

    model_config = ConfigDict(frozen=True)
    # The history's wire form for the model, kept from the turn that made this agent (a slot: equality,
    # dumps and copies ignore it; a copy with another history computes its own).
    __slots__ = ("_history_wire",)

    name: str
    system_prompt: str
    model: str
    model_settings: dict[str, Any]
    metadata: dict[str, Any]
    history: tuple[Message, ...] = ()

    def __init__(
        self,
        *,
        name: str,
        system_prompt: str,
        model: str,
        model_settings: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        history: tuple[Message, ...] = (),
    ) -> None:
        check.text("name", name, max_length=limits.NAME_MAX_LENGTH)
        check.text("system_prompt", system_prompt)
        check.text("model", model, max_length=limits.MODEL_MAX_LENGTH)
        super().__init__(
            name=name,
            system_prompt=system_prompt,
            model=model,
            model_settings=check.model_settings(model_settings),
            metadata=check.json_object("metadata", metadata),
            history=tuple(history),
        )

    def _evolve(self, **changes: Any) -> SimpleAgent:
        return self.model_copy(update=changes)

    def _after(self, result: TurnResult) -> SimpleAgent:
        """The agent holding ``result``'s turn, with the new history's wire form kept for the next."""
        agent = self._evolve(history=self.history + result.messages)
        object.__setattr__(agent, "_history_wire", result.history_wire)
        return agent

    def _turn(self, text: str, options: TurnOptions) -> Turn:
        """The pure core's input for one turn of this agent (inputs checked first)."""
        extra = check.turn_request(text, options)
        settings = {**self.model_settings, **extra}
        wire = getattr(self, "_history_wire", None)
        if wire is None:  # the first turn from this history: convert it once, keep it
            wire = core.wire_forms(self.history)
            object.__setattr__(self, "_history_wire", wire)
        return Turn(self.history, self.system_prompt, text, self.model, settings, options, wire)

    async def advance(
        self,
        text: str,
        *,
        mcp: ToolProvider | None = None,
        max_retries: int = 3,
        timeout: float = 120.0,
        max_tool_rounds: int = 10,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
    ) -> SimpleAgent:
        """Send ``text`` to the model; the new agent holds the whole turn (tool calls included)."""
        sampling = {"temperature": temperature, "max_tokens": max_tokens, "top_p": top_p}
        options = TurnOptions(mcp, max_retries, timeout, max_tool_rounds, sampling)
        return self._after(await core.advance(self._turn(text, options)))

    async def advance_stream(
        self,
        text: str,
        *,
        mcp: ToolProvider | None = None,
        max_retries: int = 3,
        timeout: float = 120.0,
        max_tool_rounds: int = 10,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
    ) -> AsyncIterator[TurnEvent]:
        """Like ``advance``, yielding text deltas and tool events; the last event carries the new agent."""
        sampling = {"temperature": temperature, "max_tokens": max_tokens, "top_p": top_p}
        options = TurnOptions(mcp, max_retries, timeout, max_tool_rounds, sampling)
        async for event in core.run_turn(self._turn(text, options), stream=True):
            if isinstance(event, TurnResult):
                yield TurnComplete(self._after(event), event.messages)
            else:
                yield event

    def messages(self) -> tuple[Message, ...]:
        """The whole history, oldest first."""
        return self.history

    def get_messages(self) -> tuple[Message, ...]:
        """Alias of ``messages()`` (the original immagent's name)."""
        return self.history

    def last_response(self) -> str | None:
        """The content of the last assistant message, or None."""
        for message in reversed(self.history):
            if message.role == "assistant" and message.content:
                return message.content
        return None

    def token_usage(self) -> tuple[int, int]:
        """(input_tokens, output_tokens) summed over the history."""
        return (
            sum(m.input_tokens or 0 for m in self.history),
            sum(m.output_tokens or 0 for m in self.history),
        )

    def clone(self) -> SimpleAgent:
        """An equal, independent copy (values are immutable, so nothing is deep-copied)."""
        return self._evolve()

    def with_metadata(self, metadata: Mapping[str, Any]) -> SimpleAgent:
        """A copy with ``metadata`` replacing this one's."""
        return self._evolve(metadata=check.json_object("metadata", metadata))
