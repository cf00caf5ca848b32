"""Imported as a library, melflow's flows still keep Prefect from reporting usage outside."""

from __future__ import annotations

import os
import subprocess
import sys


def test_importing_the_flows_turns_prefect_analytics_off() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK",)}
    env.pop("PREFECT_SERVER_ANALYTICS_ENABLED", None)
    code = (
        "import os, melflow.flows.pipeline\n"
        "from prefect.settings import get_current_settings\n"
        "print(get_current_settings().server.analytics_enabled, os.environ['DO_NOT_TRACK'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "true"]
