"""``python -m psplava``: the command line (how ``torchrun -m psplava train ...`` starts
each process)."""

import sys

from psplava.cli import main

sys.exit(main())
