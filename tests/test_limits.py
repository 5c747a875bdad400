"""immagent.limits says exactly what the library's checks do: each pattern, read as JSON Schema reads it
(pydantic's Rust engine, with ECMA-262's anchors), admits a string exactly when the check accepts it, so
an API schema built from them neither admits what the library refuses nor refuses what it accepts."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Annotated

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter
from pydantic import ValidationError as PydanticError

import immagent
from immagent import ValidationError, _validation, limits

#: Every character str.strip() removes, and a few neighbours that it keeps (NUL, ZWSP, BOM, letters).
SPACES = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
ALPHABET = st.sampled_from(SPACES + "\x00\u200b\ufeff\x1bab.-/\u00e9\U0001f600")


def admits(pattern: str) -> Callable[[str], bool]:
    """The pattern as a request model enforces it (pydantic-core's regex engine)."""
    adapter = TypeAdapter(Annotated[str, Field(pattern=pattern)])

    def check(value: str) -> bool:
        try:
            adapter.validate_python(value)
        except PydanticError:
            return False
        return True

    return check


def accepts(check: Callable[[str], object], value: str) -> bool:
    try:
        check(value)
    except ValidationError:
        return False
    return True


def test_whitespace_is_exactly_what_strip_removes() -> None:
    spaces = re.compile(f"[{limits.WHITESPACE}]")
    assert {c for c in map(chr, range(sys.maxunicode + 1)) if spaces.fullmatch(c)} == set(SPACES)


TEXT, IDENTIFIER, NO_NUL = (
    admits(limits.TEXT_PATTERN),
    admits(limits.IDENTIFIER_PATTERN),
    admits(limits.NO_NUL_PATTERN),
)


@settings(max_examples=400, derandomize=True)
@given(st.text(ALPHABET, max_size=6))
def test_each_pattern_admits_exactly_what_its_check_accepts(value: str) -> None:
    assert TEXT(value) == accepts(lambda v: _validation.text("f", v), value)
    assert IDENTIFIER(value) == accepts(lambda v: _validation.identifier("f", v, max_length=99), value)
    assert NO_NUL(value) == accepts(lambda v: _validation.text("f", v, allow_empty=True), value)


@pytest.mark.parametrize(
    ("check", "limit"),
    [
        (_validation.tenant, limits.TENANT_MAX_LENGTH),
        (_validation.thread_key, limits.THREAD_KEY_MAX_LENGTH),
        (lambda v: _validation.page_limit(len(v)), limits.PAGE_MAX_LIMIT),
    ],
)
def test_the_lengths_are_the_checks_own(check: Callable[[str], object], limit: int) -> None:
    assert accepts(check, "x" * limit)
    assert not accepts(check, "x" * (limit + 1))


def test_limits_is_public_but_not_in_all() -> None:
    assert "limits" not in immagent.__all__
    assert set(limits.__all__) == {n for n in vars(limits) if n.isupper()}
