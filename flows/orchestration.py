"""Whether the command line runs the stages through Prefect or calls them directly.

With a Prefect server to record to (``PREFECT_API_URL`` in the environment or in the
active Prefect profile), every command is a Prefect flow run, with its task runs, cache
keys, retries, tags and artifacts in the UI. Without one, Prefect would start a temporary
server in each process: seconds of start-up (minutes, or a timeout, on a busy machine) to
record runs that nobody sees. The stages then run directly, the same functions in the
same order, resuming from the same markers; only Prefect's bookkeeping and its retries of
transient errors are missing.

``MELFLOW_PREFECT=always`` uses the temporary server all the same; ``never`` runs
directly even when a server is configured.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from melflow.errors import ConfigError

MODE_ENV = "MELFLOW_PREFECT"
MODES = ("auto", "always", "never")


def _profile_api_url() -> str | None:
    """``PREFECT_API_URL`` of the active profile in ``$PREFECT_HOME/profiles.toml``."""
    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()
    path = home / "profiles.toml"
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    settings = profiles.get("profiles", {}).get(active, {})
    url = settings.get("PREFECT_API_URL") if isinstance(settings, dict) else None
    return str(url) if url else None


def mode() -> str:
    """``$MELFLOW_PREFECT``: ``auto`` (the default), ``always`` or ``never``.

    Raises
    ------
    ConfigError
        Any other value.
    """
    value = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ConfigError(f"{MODE_ENV}={value!r}: use one of {', '.join(MODES)}")
    return value


def orchestrated() -> bool:
    """True when the stages should run as Prefect flow and task runs (see the module doc)."""
    mode_ = mode()
    if mode_ == "always":
        return True
    if mode_ == "never":
        return False
    return bool(os.environ.get("PREFECT_API_URL") or _profile_api_url())


def in_flow_run() -> bool:
    """True inside a Prefect flow run (a process that never imported Prefect is in none)."""
    context = sys.modules.get("prefect.context")
    return context is not None and context.FlowRunContext.get() is not None


def call(runnable: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a Prefect task or flow: as a run inside a flow run, else as its plain function
    (a flow's function called directly, see :func:`orchestrated`)."""
    return runnable(*args, **kwargs) if in_flow_run() else runnable.fn(*args, **kwargs)


def run_flow(flow: Any, *args: Any, **kwargs: Any) -> Any:
    """A command's flow: a Prefect flow run when :func:`orchestrated`, else its function."""
    return flow(*args, **kwargs) if orchestrated() else flow.fn(*args, **kwargs)
