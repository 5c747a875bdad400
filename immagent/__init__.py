"""immagent: LLM agents whose every state is an immutable, persisted value.

``import immagent`` is cheap: the store (SQLAlchemy), LiteLLM and MCP load when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from immagent._constants import Model
from immagent._errors import (
    AgentNotFoundError,
    AgentNotRegisteredError,
    AssetNotFoundError,
    ConflictError,
    DatabaseUnavailableError,
    ImmAgentError,
    ImmutabilityError,
    LLMError,
    MessageNotFoundError,
    SchemaError,
    ThreadExistsError,
    ThreadNotFoundError,
    ToolExecutionError,
    ValidationError,
)

if TYPE_CHECKING:
    from immagent._advance import TextDelta, ToolCallFinished, ToolCallStarted, TurnComplete, TurnEvent
    from immagent._mcp import MCPManager
    from immagent._messages import Message, NativeForm, ToolCall
    from immagent._simple import SimpleAgent
    from immagent._store import Store
    from immagent._store._paging import Page
    from immagent._views import PersistentAgent, SystemPrompt, Thread, ThreadMove

__version__ = "0.2.0"

__all__ = [
    "AgentNotFoundError",
    "AgentNotRegisteredError",
    "AssetNotFoundError",
    "ConflictError",
    "DatabaseUnavailableError",
    "ImmAgentError",
    "ImmutabilityError",
    "LLMError",
    "MCPManager",
    "Message",
    "MessageNotFoundError",
    "Model",
    "NativeForm",
    "Page",
    "PersistentAgent",
    "SchemaError",
    "SimpleAgent",
    "Store",
    "SystemPrompt",
    "TextDelta",
    "Thread",
    "ThreadExistsError",
    "ThreadMove",
    "ThreadNotFoundError",
    "ToolCall",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolExecutionError",
    "TurnComplete",
    "TurnEvent",
    "ValidationError",
]

_LAZY = {
    "MCPManager": "immagent._mcp",
    "Message": "immagent._messages",
    "NativeForm": "immagent._messages",
    "ToolCall": "immagent._messages",
    "PersistentAgent": "immagent._views",
    "SystemPrompt": "immagent._views",
    "Thread": "immagent._views",
    "ThreadMove": "immagent._views",
    "Page": "immagent._store._paging",
    "SimpleAgent": "immagent._simple",
    "Store": "immagent._store",
    "TextDelta": "immagent._advance",
    "ToolCallFinished": "immagent._advance",
    "ToolCallStarted": "immagent._advance",
    "TurnComplete": "immagent._advance",
    "TurnEvent": "immagent._advance",
}


def __getattr__(name: str) -> Any:
    """Load heavy names on first access so that ``import immagent`` stays fast."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'immagent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
