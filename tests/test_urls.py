"""Database URLs map onto the async drivers immagent uses; each engine gets its backend's pool settings."""

from __future__ import annotations

import pytest

from immagent import ValidationError
from immagent._engine import engine_options
from immagent._urls import database_url


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://app@db/app", "postgresql+asyncpg://app@db/app"),
        ("postgres://app@db/app", "postgresql+asyncpg://app@db/app"),
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("mysql://app:pw@db:3306/app", "mysql+asyncmy://app:pw@db:3306/app"),
        ("mariadb://app@db/app", "mariadb+asyncmy://app@db/app"),
        ("MySQL://app@db/app", "mysql+asyncmy://app@db/app"),
        ("mysql+aiomysql://app@db/app", "mysql+aiomysql://app@db/app"),
    ],
)
def test_common_url_forms_map_onto_the_async_drivers(given: str, used: str) -> None:
    assert database_url(given) == used


def test_an_unknown_scheme_is_a_validation_error_naming_the_supported_ones() -> None:
    with pytest.raises(ValidationError, match=r"mysql:// or mariadb://") as caught:
        database_url("oracle://app@db/app")
    assert caught.value.field == "url"


@pytest.mark.parametrize(
    ("url", "timeouts"),
    [
        ("postgresql+asyncpg://h/d", {"timeout": 9.0, "command_timeout": 9.0}),
        ("mysql+asyncmy://h/d", {"connect_timeout": 9.0, "read_timeout": 9.0}),
        ("mariadb+asyncmy://h/d", {"connect_timeout": 9.0, "read_timeout": 9.0}),
    ],
)
def test_server_pools_are_recycled_checked_by_a_socket_poll_and_bounded_in_time(
    url: str, timeouts: dict[str, float]
) -> None:
    options = engine_options(url, max_size=7, recycle=300.0, command_timeout=9.0)
    assert options == {
        "pool_size": 7,
        "max_overflow": 0,
        "pool_recycle": 300.0,
        "pool_pre_ping": False,
        "connect_args": timeouts,
    }
    assert engine_options(url, max_size=7, recycle=300.0, command_timeout=None)["connect_args"] == {}


def test_a_mysql_driver_without_the_socket_poll_pings_at_checkout() -> None:
    assert engine_options("mysql+aiomysql://h/d", max_size=2, recycle=60.0)["pool_pre_ping"] is True
