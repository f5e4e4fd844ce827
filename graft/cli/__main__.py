"""``python -m graft.cli``: the same as the ``graft`` console script."""

from graft.cli import main

main()
