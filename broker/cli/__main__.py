"""``python -m broker.cli`` is the ``conveyor`` command."""

from broker.cli import main

main()
