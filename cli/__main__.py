"""``python -m psplava.cli``: the command line, as ``psplava`` and ``python -m psplava``."""

import sys

from psplava.cli import main

sys.exit(main())
