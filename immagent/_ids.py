"""Identifiers: time-ordered UUIDv7 for rows, content-derived UUIDs for texts.

UUIDv7 keeps B-tree inserts sequential as tables grow; a content id lets a million agents that share one
system prompt store it once.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from uuid import UUID

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> UUID:
    """A RFC 9562 version-7 UUID: 48-bit Unix milliseconds, then a 12-bit counter that keeps ids
    generated in one millisecond by this process strictly increasing, then random bits."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave headroom for the counter
        else:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                ms = _last_ms
                _counter = 0
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    return UUID(int=value)


def content_id(content: str) -> UUID:
    """A deterministic id for a text: SHA-256 of its UTF-8 bytes, shaped as a version-8 UUID."""
    digest = bytearray(hashlib.sha256(content.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8 (custom)
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 9562 variant
    return UUID(bytes=bytes(digest))


def as_uuid(value: UUID | str, field: str = "id") -> UUID:
    """Accept a UUID or its string form; anything else is a ValidationError naming ``field``."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value.strip())
        except ValueError:
            pass
    from immagent._errors import ValidationError

    raise ValidationError(field, f"not a UUID: {value!r}")
