"""``python -m melflow``: the same command line as the ``melflow`` script."""

from melflow.flows.cli import main

main()
