"""Prefect flows composing the tasks, and the ``melflow`` command line."""
