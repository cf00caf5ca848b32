"""``melflow`` commands as child processes, the way a user (or a kill test) runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

MELFLOW = [sys.executable, "-m", "melflow"]
HEAVY = ("prefect", "mlflow", "sqlalchemy", "alembic", "torch", "dask", "distributed", "scipy")
_PROBE = f"""
import importlib, sys
cli = importlib.import_module("melflow.flows.cli")
sys.argv = ["melflow", *sys.argv[1:]]
try:
    cli.main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)
print(f"\\nexit={{code}} loaded={{','.join(loaded)}}", file=sys.stderr)
"""


def melflow_argv(
    command: str, sets: Iterable[str], *extra: str, profile: str = "small"
) -> list[str]:
    """``melflow COMMAND -p PROFILE -s SET... EXTRA...`` as an argv."""
    return [*MELFLOW, command, "-p", profile, *(a for s in sets for a in ("-s", s)), *extra]


def probe(*args: str) -> tuple[str, str]:
    """Run ``melflow ARGS`` in a fresh process: its stdout, and a last line
    ``exit=<code> loaded=<the HEAVY modules it imported, comma-separated>``."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=300
    )
    return done.stdout, done.stderr.strip().splitlines()[-1]


def start(
    argv: list[str], *, env: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen[Any]:
    """Start ``argv`` in its own session (so a test can kill the whole group) with the
    ephemeral Prefect API of its own, never the test harness's server; ``env`` adds to
    this process's environment."""
    base = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(argv, start_new_session=True, env={**base, **(env or {})}, **popen)


def wait_until(
    proc: subprocess.Popen[Any], ready: Callable[[], bool], *, timeout: float, what: str
) -> None:
    """Poll ``ready`` until it holds; fail with the child's stderr if it exits first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            text = err.decode(errors="replace") if isinstance(err, bytes) else str(err)
            raise AssertionError(f"exited {proc.returncode} first: {text[-3000:]}")
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout:.0f} s"
        time.sleep(0.05)
