"""``python -m sim`` runs the ``dosesim`` command."""

from sim.cli import console

console()
