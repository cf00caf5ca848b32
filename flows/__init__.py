"""Prefect flows composing the tasks, and the ``melflow`` command line."""

import os

# Prefect's server reports usage to an outside host by default; melflow speaks only to
# the addresses it is given, whether it is run from the CLI or imported as a library.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "true")
