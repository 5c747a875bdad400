"""immagent as the storage under other agent frameworks, one module per framework.

Each module needs its framework, installed through an extra (``pip install 'immagent[pydantic-ai]'``), and
imports it when the module itself is imported: this package imports nothing, so ``import immagent``
never loads a framework.
"""
