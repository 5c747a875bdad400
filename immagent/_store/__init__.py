"""immagent's persistence, split by concern; ``Store`` is its public face (see ``_store``)."""

from immagent._store._store import Store

__all__ = ["Store"]
