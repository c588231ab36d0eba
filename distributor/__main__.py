"""``python -m distributor`` is the ``distributor`` command."""

from distributor.cli import run

run()
