"""Prefect tasks: thin wrappers over ``melflow`` domain functions with explicit cache keys."""
