"""Database URL defaults and the mapping of common URL forms onto the async drivers immagent uses."""

from __future__ import annotations

import os

from immagent._errors import ValidationError

DEFAULT_URL = "sqlite+aiosqlite:///immagent.db"
ENV_VAR = "IMMAGENT_DATABASE_URL"

_SCHEMES = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "mysql": "mysql+asyncmy",
    "mariadb": "mariadb+asyncmy",
    "mysql+asyncmy": "mysql+asyncmy",
    "mysql+aiomysql": "mysql+aiomysql",
    "mariadb+asyncmy": "mariadb+asyncmy",
    "mariadb+aiomysql": "mariadb+aiomysql",
}


def database_url(url: str | None = None) -> str:
    """The URL to use: the argument, else $IMMAGENT_DATABASE_URL, else the embedded SQLite default;
    ``postgresql://`` and ``postgres://`` map to asyncpg, ``sqlite://`` to aiosqlite, ``mysql://`` and
    ``mariadb://`` to asyncmy (the ``immagent[mysql]`` extra)."""
    chosen = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    if not isinstance(chosen, str) or "://" not in chosen:
        raise ValidationError("url", f"not a database URL: {chosen!r}")
    scheme, rest = chosen.split("://", 1)
    mapped = _SCHEMES.get(scheme.lower())
    if mapped is None:
        raise ValidationError(
            "url", f"unsupported scheme {scheme!r}; use postgresql://, sqlite://, mysql:// or mariadb://"
        )
    return f"{mapped}://{rest}"
