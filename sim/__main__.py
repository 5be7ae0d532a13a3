"""``python -m sim`` runs the ``dosesim`` command."""

import sys

from sim.cli import main

sys.exit(main())
