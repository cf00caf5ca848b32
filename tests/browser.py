"""Render a local HTML file in headless Chromium: its console messages and a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

# No network, no profile state, no background services: the page alone decides the result.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
)
CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)")


@dataclass(frozen=True)
class Rendered:
    """Console messages the page produced and its screenshot as RGB(A) floats in [0, 1]."""

    console: list[str]
    pixels: np.ndarray


def chromium_or_skip() -> str:
    """The Chromium binary (Debian's ``chromium``; ``make deps-system`` installs it)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium is not installed (make deps-system installs it as root)")
    return binary


def render(page: Path, *, workdir: Path, width: int = 1280, height: int = 2400) -> Rendered:
    """Load ``page`` in a fresh headless Chromium profile and screenshot the first ``height`` px."""
    binary = chromium_or_skip()
    shot = workdir / "screenshot.png"
    done = subprocess.run(
        [
            binary,
            *FLAGS,
            f"--user-data-dir={workdir / 'profile'}",
            f"--window-size={width},{height}",
            f"--screenshot={shot}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    console = [m.group(1) for m in map(CONSOLE.search, done.stderr.splitlines()) if m]
    return Rendered(console=console, pixels=np.asarray(matplotlib.image.imread(shot)))
