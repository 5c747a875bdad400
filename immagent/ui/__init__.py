"""``immagent ui``: a local, read-only web inspector of a database's states, threads and family trees.

Server-rendered HTML on Starlette and Jinja2 (autoescaped), an SVG family tree drawn on the server, no
script at all, served by uvicorn. Install the optional extra: ``pip install 'immagent[ui]'``.

    from immagent.ui import create_app
    app = create_app("sqlite+aiosqlite:///immagent.db")    # any ASGI server can serve it
"""

from immagent.ui._app import create_app, is_loopback
from immagent.ui._serve import serve

__all__ = ["create_app", "is_loopback", "serve"]
