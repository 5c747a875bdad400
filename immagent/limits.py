"""The limits immagent enforces on what it is given, as public constants for the layers in front of it.

An HTTP API, a form or a CLI can state these in its own schema (``examples/fastapi_app.py`` puts them in
its request models) so that what the schema admits the library accepts, and what the library refuses the
schema refuses. The library's own checks use the same constants, so the two cannot drift apart.

The patterns are written for every regex dialect that JSON Schema tools use (ECMA-262, Python ``re``,
Rust ``regex``): explicit character classes, no ``\\s`` (its meaning differs between them), anchored at both
ends. Not in ``immagent.__all__``: import the module, ``from immagent import limits``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CURSOR_MAX_LENGTH",
    "IDENTIFIER_PATTERN",
    "MODEL_MAX_LENGTH",
    "NAME_MAX_LENGTH",
    "NO_NUL_PATTERN",
    "PAGE_MAX_LIMIT",
    "TENANT_MAX_LENGTH",
    "TEXT_PATTERN",
    "THREAD_KEY_MAX_LENGTH",
    "WHITESPACE",
]

NAME_MAX_LENGTH: Final = 255
"""An agent state's ``name``, in characters."""
MODEL_MAX_LENGTH: Final = 255
"""An agent state's ``model`` (the LiteLLM model name), in characters."""
TENANT_MAX_LENGTH: Final = 64
"""A tenant name, in characters."""
THREAD_KEY_MAX_LENGTH: Final = 255
"""A thread key, in characters."""
CURSOR_MAX_LENGTH: Final = 1024
"""A listing's ``next_cursor`` (what ``after=`` accepts), in characters."""
PAGE_MAX_LIMIT: Final = 1_000_000
"""The largest ``limit=`` of one page of a listing: a larger one is a ValidationError, not a LIMIT that
overflows the database's integer (a script may still read a million rows at once; an API will bound
its pages far lower)."""

WHITESPACE: Final = (
    "\\u0009-\\u000d\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
"""The characters Python's ``str.strip()`` removes (``str.isspace()``): what "only whitespace" and
"surrounding whitespace" mean in immagent's checks. A regex character-class body."""

NO_NUL_PATTERN: Final = "^[^\\u0000]*$"
"""Text without NUL characters (PostgreSQL refuses NUL in text and jsonb); empty allowed."""
TEXT_PATTERN: Final = f"^[{WHITESPACE}]*[^\\u0000{WHITESPACE}][^\\u0000]*$"
"""Text that is not empty, not only whitespace, and has no NUL: a name, a prompt, a message's text."""
IDENTIFIER_PATTERN: Final = f"^[^\\u0000{WHITESPACE}]([^\\u0000]*[^\\u0000{WHITESPACE}])?$"
"""A tenant or a thread key: TEXT_PATTERN, and no leading or trailing whitespace either."""
