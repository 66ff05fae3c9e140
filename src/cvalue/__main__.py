"""``python -m cvalue``: the command line."""

from cvalue.cli import main

main()
