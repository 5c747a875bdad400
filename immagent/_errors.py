"""The exception hierarchy: one base, caller mistakes on their own branch.

ImmAgentError
├── ValidationError (also ValueError)   a bad argument; carries the field name; nothing was written
├── AssetNotFoundError (also LookupError)
│   ├── AgentNotFoundError              also: a state of another tenant (no hint that it exists)
│   ├── MessageNotFoundError
│   └── ThreadNotFoundError             no thread with this key in this tenant
├── ConflictError                       a thread moved meanwhile; ``current`` says where it is now
│   └── ThreadExistsError               create_thread with a key already taken in the tenant
├── AgentNotRegisteredError             a view used without a store (e.g. built by hand)
├── DatabaseUnavailableError            the database could not be reached; nothing was written
├── ImmutabilityError                   an attempt to UPDATE an immagent row
├── LLMError                            the model call failed (after retries)
├── ToolExecutionError                  a tool failed (reported to the model, not raised by advance)
└── SchemaError                         the database is not at the library's migration head
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from immagent._views import Thread


class ImmAgentError(Exception):
    """Base of every error immagent raises on purpose."""


class ValidationError(ImmAgentError, ValueError):
    """A caller passed a bad value; ``field`` names the argument. Nothing was written."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class AssetNotFoundError(ImmAgentError, LookupError):
    """Something looked up by id does not exist (or was deleted)."""


class AgentNotFoundError(AssetNotFoundError):
    """No agent state with this id exists in the store."""

    def __init__(self, agent_id: UUID | str, message: str | None = None) -> None:
        self.agent_id = agent_id
        super().__init__(message or f"agent {agent_id} not found")


class MessageNotFoundError(AssetNotFoundError):
    """A message (for example a history's head) is missing, usually removed by gc."""

    def __init__(self, message_id: UUID | str, message: str | None = None) -> None:
        self.message_id = message_id
        super().__init__(message or f"message {message_id} not found")


class ThreadNotFoundError(AssetNotFoundError):
    """No thread with this key exists in this tenant (or it was deleted)."""

    def __init__(self, key: str, message: str | None = None) -> None:
        self.key = key
        super().__init__(message or f"thread {key!r} not found")


class ConflictError(ImmAgentError):
    """Another writer moved the thread first; nothing was written. ``current`` is the thread as it is
    now (None when it is gone): reload, look, and retry from there if that is still what you want."""

    def __init__(self, key: str, message: str, *, expected: int | None = None, current: Any = None) -> None:
        self.key = key
        self.expected = expected
        self.current: Thread | None = current
        super().__init__(message)


class ThreadExistsError(ConflictError):
    """``create_thread`` with a key that this tenant already has; ``current`` is that thread."""


class AgentNotRegisteredError(ImmAgentError):
    """A PersistentAgent view has no store bound (it was built by hand or deserialised)."""


class DatabaseUnavailableError(ImmAgentError):
    """The database server could not be reached or went away during the call (refused, lost, timed out).

    The driver's error is chained (``__cause__``). The call's transaction did not commit, so retry it once
    the server answers again: the pool replaces broken connections by itself. Genuine SQL errors (an
    integrity error, a syntax error) are never turned into this one.
    """


class ImmutabilityError(ImmAgentError):
    """An immagent row was about to be UPDATEd; every stored state is immutable."""


class LLMError(ImmAgentError):
    """The model call failed; ``hint`` says what to do when the cause is known (e.g. a missing API key)."""

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        status_code: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.model = model
        self.status_code = status_code
        self.hint = hint
        text = message if hint is None else f"{message} ({hint})"
        super().__init__(text)


class ToolExecutionError(ImmAgentError):
    """A tool call could not be executed; advance reports it to the model as a tool message."""

    def __init__(self, tool_name: str, message: str) -> None:
        self.tool_name = tool_name
        super().__init__(f"tool {tool_name!r}: {message}")


class SchemaError(ImmAgentError):
    """The database schema is not at the revision this library needs; the message names the fix."""

    def __init__(self, message: str, *, database_revision: str | None, library_revision: str) -> None:
        self.database_revision = database_revision
        self.library_revision = library_revision
        super().__init__(message)
