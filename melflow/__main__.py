"""``python -m melflow``: the same command line as the ``melflow`` script."""

from flows.cli import main

main()
