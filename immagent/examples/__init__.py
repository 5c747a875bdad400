"""Examples shipped inside the package, so the demo works from an installed wheel (no checkout needed).

- ``immagent.examples.weather_server``: a deterministic MCP weather server
  (``python -m immagent.examples.weather_server``).
"""
