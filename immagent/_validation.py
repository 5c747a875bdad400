"""Input checks shared by Store, PersistentAgent and SimpleAgent.

Every check runs before anything is written or sent, and raises ValidationError naming the argument.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from immagent._errors import ValidationError

if TYPE_CHECKING:
    from immagent._advance import TurnOptions

#: Keys that carry credentials. They are refused in model_settings because model_settings is stored.
_SECRET_KEYS = re.compile(
    r"^(api[_-]?key|api[_-]?secret|api[_-]?token|secret|secret[_-]?key|client[_-]?secret|password|passwd|"
    r"token|access[_-]?token|auth[_-]?token|bearer[_-]?token|refresh[_-]?token|id[_-]?token|authorization|"
    r"proxy[_-]?authorization|x[_-]?api[_-]?key|credentials?|private[_-]?key|azure[_-]?ad[_-]?token|"
    r"aws[_-]?access[_-]?key[_-]?id|aws[_-]?secret[_-]?access[_-]?key|aws[_-]?session[_-]?token|"
    r"vertex[_-]?credentials|service[_-]?account[_-]?json)$"
    r"|(_api[_-]?key|_secret|_password|_token)$",
    re.IGNORECASE,
)
#: Settings the library itself owns per call; passing them in model_settings would be ambiguous.
_RESERVED_SETTINGS = frozenset({"model", "messages", "tools", "stream", "timeout"})
_NUMERIC_OVERRIDES = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0)}


def text(field: str, value: object, *, allow_empty: bool = False, max_length: int | None = None) -> str:
    """A non-empty string without NUL characters (PostgreSQL refuses NUL in text) that encodes to UTF-8."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ValidationError(field, "must not be empty or only whitespace")
    if "\x00" in value:
        raise ValidationError(field, "must not contain NUL characters (\\x00)")
    _utf8(field, value)
    if max_length is not None and len(value) > max_length:
        raise ValidationError(field, f"must be at most {max_length} characters, got {len(value)}")
    return value


def identifier(field: str, value: object, *, max_length: int) -> str:
    """A tenant or thread key: :func:`text`, without leading or trailing whitespace (MySQL would compare
    ``"a"`` and ``"a "`` equal, and a key that differs only by spaces is a mistake everywhere)."""
    text(field, value, max_length=max_length)
    assert isinstance(value, str)
    if value != value.strip():
        raise ValidationError(field, "must not start or end with whitespace")
    return value


def tenant(value: object) -> str:
    """A tenant name: 1 to 64 characters, no NUL, no surrounding whitespace."""
    return identifier("tenant", value, max_length=64)


def thread_key(value: object) -> str:
    """A thread key: 1 to 255 characters, no NUL, no surrounding whitespace."""
    return identifier("key", value, max_length=255)


def json_object(field: str, value: object) -> dict[str, Any]:
    """A dict that survives a JSON round trip unchanged in meaning (str keys, finite numbers, no NUL)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(field, f"must be a dict, not {type(value).__name__}")
    try:
        encoded = json.dumps(dict(value), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(field, f"must be JSON-serialisable: {exc}") from exc
    _utf8(field, encoded)
    decoded: dict[str, Any] = json.loads(encoded)
    if _has_nul(decoded):  # not a search of the JSON text: the six characters "\\u0000" are fine
        raise ValidationError(field, "must not contain NUL characters (\\x00)")
    if _has_non_str_keys(value):
        raise ValidationError(field, "keys must be strings")
    return decoded


#: The largest native form a message may carry, as compact JSON (UTF-8 bytes). Each row must also fit in
#: one statement on every backend (MariaDB's default max_allowed_packet is 16 MiB).
NATIVE_MAX_BYTES = 8 * 1024 * 1024
#: How deep a native form's JSON may nest (objects and arrays): MariaDB refuses JSON nested 32 deep, and
#: a stored form sits inside one more object (``{"format": ..., "data": ...}``).
NATIVE_MAX_DEPTH = 30


def json_value(
    field: str, value: object, *, max_bytes: int = NATIVE_MAX_BYTES, max_depth: int = NATIVE_MAX_DEPTH
) -> Any:
    """Any JSON value that every backend stores (in a column that keeps JSON text as written) and gives
    back exactly: str keys, finite numbers, no NUL, valid Unicode, at most ``max_bytes`` as compact JSON
    and ``max_depth`` levels of nesting. Returns the value as JSON decodes it (tuples become lists: what
    a read returns)."""
    if _has_non_str_keys(value):
        raise ValidationError(field, "keys must be strings (JSON would turn them into strings)")
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(field, f"must be JSON-serialisable: {exc}") from exc
    _utf8(field, encoded)
    size = len(encoded.encode("utf-8"))
    if size > max_bytes:
        raise ValidationError(field, f"must be at most {max_bytes} bytes as JSON, got {size}")
    decoded = json.loads(encoded)
    if _depth(decoded) > max_depth:
        raise ValidationError(field, f"must not nest objects and arrays more than {max_depth} levels deep")
    if _has_nul(decoded):
        raise ValidationError(field, "must not contain NUL characters (\\x00)")
    return decoded


def _depth(value: object) -> int:
    """How many objects and arrays nest at the deepest point of a decoded JSON value."""
    deepest, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            level.extend((child, depth + 1) for child in children)
    return deepest


def _utf8(field: str, value: str) -> None:
    """Refuse text that cannot be encoded to UTF-8 (lone surrogates such as ``"\\ud800"``): no database
    driver can store it, and SQLite and PostgreSQL would each fail differently deep inside the write."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            field,
            f"must be valid Unicode: the lone surrogate {value[exc.start]!r} at position {exc.start} "
            "cannot be encoded as UTF-8",
        ) from None


def _has_nul(value: object) -> bool:
    """A NUL character in any key or string value (PostgreSQL's jsonb refuses it)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _has_non_str_keys(value: object) -> bool:
    if isinstance(value, Mapping):
        return any(not isinstance(k, str) or _has_non_str_keys(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_non_str_keys(v) for v in value)
    return False


def _secret_paths(value: object, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _SECRET_KEYS.search(key) and key.lower() != "max_tokens":
                found.append(where)
            found.extend(_secret_paths(item, where))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found.extend(_secret_paths(item, f"{path}[{i}]"))
    return found


def model_settings(value: object) -> dict[str, Any]:
    """Model settings that may be stored: JSON, no credentials, no keys the library sets itself."""
    settings = json_object("model_settings", value)
    secrets = _secret_paths(settings)
    if secrets:
        raise ValidationError(
            "model_settings",
            f"must not hold credentials ({', '.join(secrets)}); model_settings is stored with every state. "
            "Pass keys through the environment (e.g. OPENAI_API_KEY) instead",
        )
    reserved = sorted(_RESERVED_SETTINGS & settings.keys())
    if reserved:
        raise ValidationError("model_settings", f"must not set {', '.join(reserved)}; immagent sets them")
    for key, (low, high) in _NUMERIC_OVERRIDES.items():
        if key in settings:
            number(f"model_settings.{key}", settings[key], low=low, high=high)
    if "max_tokens" in settings:
        positive_int("model_settings.max_tokens", settings["max_tokens"])
    return settings


def number(field: str, value: object, *, low: float, high: float) -> float:
    """A finite real number within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(field, f"must be a number, got {value!r}")
    if not low <= value <= high:
        raise ValidationError(field, f"must be between {low} and {high}, got {value!r}")
    return float(value)


def positive_int(field: str, value: object, *, minimum: int = 1) -> int:
    """An int (not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, got {value!r}")
    if value < minimum:
        raise ValidationError(field, f"must be >= {minimum}, got {value}")
    return value


def seconds(field: str, value: object) -> float:
    """A finite, positive number of seconds (an int or a float, not a bool)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValidationError(field, f"must be a positive number of seconds, got {value!r}")
    return float(value)


def turn_options(*, max_retries: object, timeout: object, max_tool_rounds: object) -> None:
    """The numeric options of advance()."""
    positive_int("max_retries", max_retries, minimum=0)
    positive_int("max_tool_rounds", max_tool_rounds, minimum=1)
    seconds("timeout", timeout)


def overrides(values: Mapping[str, object]) -> dict[str, Any]:
    """Per-call sampling overrides (temperature, max_tokens, top_p); None means 'not given'."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if key == "max_tokens":
            out[key] = positive_int(key, value)
        else:
            low, high = _NUMERIC_OVERRIDES[key]
            out[key] = number(key, value, low=low, high=high)
    return out


def tool_provider(value: object) -> None:
    """``mcp=`` must be None or offer ``get_all_tools()`` and ``execute()`` (MCPManager does)."""
    from immagent._advance import ToolProvider

    if value is not None and not isinstance(value, ToolProvider):
        raise ValidationError("mcp", f"must be an MCPManager or a ToolProvider, not {type(value).__name__}")


def turn_request(user_text: object, options: TurnOptions) -> dict[str, Any]:
    """Everything a turn's caller passed (text and options); returns the per-call sampling overrides."""
    text("text", user_text)
    tool_provider(options.mcp)
    turn_options(
        max_retries=options.max_retries, timeout=options.timeout, max_tool_rounds=options.max_tool_rounds
    )
    return overrides(options.overrides)
