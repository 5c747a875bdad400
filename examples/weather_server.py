"""The immagent example MCP weather server, runnable from a checkout: ``python examples/weather_server.py``.

The server itself ships inside the package (``immagent.examples.weather_server``, also runnable as
``python -m immagent.examples.weather_server``) so that ``immagent demo`` works from an installed wheel;
this file re-exports it for the docs and the tests. Options: ``--http``, ``--host``, ``--port``,
``--with-test-tools`` (see the module's docstring).
"""

from __future__ import annotations

from immagent.examples.weather_server import (
    TEST_TOOLS_ENV,
    crash,
    create_server,
    fail,
    get_forecast,
    get_weather,
    http_app,
    image_result,
    main,
    slow,
    structured_result,
)

__all__ = [
    "TEST_TOOLS_ENV",
    "crash",
    "create_server",
    "fail",
    "get_forecast",
    "get_weather",
    "http_app",
    "image_result",
    "main",
    "slow",
    "structured_result",
]

if __name__ == "__main__":
    main()
