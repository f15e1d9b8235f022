"""``python -m symdiff``: the same command-line tool as the ``symdiff`` script."""

import sys

from .cli import main

sys.exit(main())
