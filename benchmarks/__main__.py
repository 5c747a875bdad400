"""``python -m benchmarks``: see ``benchmarks.run``."""

import logging

from benchmarks.run import main

logging.basicConfig(level=logging.WARNING)
raise SystemExit(main())
