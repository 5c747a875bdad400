"""Keyset pages: an opaque cursor names the last row of a page, and the next page starts after it.

Page 1,000 costs what page 1 costs: the query seeks the index to the cursor instead of counting past
every earlier row (which ``offset=`` still does, as the slow path kept for the original API's callers).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, and_, or_

from immagent import limits
from immagent._errors import ValidationError
from immagent._messages import as_utc

__all__ = ["Page", "after_cursor", "decode_cursor", "encode_cursor", "page_of"]

T = TypeVar("T")


class Page(tuple[T, ...], Generic[T]):
    """One page of a listing: a tuple of views, newest first, and ``next_cursor`` (None on the last
    page) to pass as ``after=`` for the next one."""

    next_cursor: str | None

    def __new__(cls, items: Iterable[T], next_cursor: str | None = None) -> Page[T]:
        page = super().__new__(cls, items)
        page.next_cursor = next_cursor
        return page


def encode_cursor(kind: str, created_at: datetime, tiebreak: str) -> str:
    """An opaque, URL-safe token for the row (created_at, tiebreak) of a listing of ``kind``."""
    raw = json.dumps([kind, as_utc(created_at).isoformat(), tiebreak], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: object) -> tuple[datetime, str]:
    """The (created_at, tiebreak) a cursor names; ValidationError("after") for anything else, including
    a cursor of another listing."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > limits.CURSOR_MAX_LENGTH:
        raise ValidationError("after", "must be the next_cursor of a previous page of this listing")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found_kind, stamp, tiebreak = json.loads(raw)
        if found_kind != kind or not isinstance(tiebreak, str):
            raise ValueError(kind)
        return as_utc(datetime.fromisoformat(stamp)), tiebreak
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationError("after", "must be the next_cursor of a previous page of this listing") from exc


def after_cursor(created_at: Any, tiebreak: Any, at: datetime, last: Any) -> ColumnElement[bool]:
    """Rows after (at, last) in the order (created_at DESC, tiebreak DESC), written so that every backend
    seeks the index: a range on created_at, then the tiebreak among equal times."""
    return and_(created_at <= at, or_(created_at < at, tiebreak < last))


def page_of(views: list[T], limit: int, cursor_of: Any) -> Page[T]:
    """A page from ``limit + 1`` fetched views: the extra one only tells that a next page exists."""
    if len(views) > limit:
        views = views[:limit]
        return Page(views, cursor_of(views[-1]) if views else None)
    return Page(views, None)
