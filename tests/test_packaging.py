"""The wheel: profiles ship inside it and are found from the installed package."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("melflow", "flows", "tasks", "pipeline_config", "pyproject.toml", "setup.py")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the checkout (the build writes beside its sources)."""
    src = tmp_path_factory.mktemp("src")
    for name in (*SOURCES, "README.md", "LICENSE"):
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif path.exists():
            shutil.copy(path, src / name)
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run(
        [*pip, str(src), "-w", str(out)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("melflow-*.whl"))


def test_the_wheel_ships_the_profiles(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (REPO / "pipeline_config").glob("*.yaml")}
    assert {f"melflow/pipeline_config/{name}" for name in shipped} <= names
    assert "melflow/py.typed" in names and "melflow/__main__.py" in names
    assert {"melflow/flows/cli.py", "melflow/tasks/progress.py"} <= names
    assert {name.split("/")[0] for name in names} == {
        "melflow",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }
    assert not any("__pycache__" in name for name in names)


def test_code_imports_flows_and_tasks_by_their_installed_names() -> None:
    """``flows.x`` and ``melflow.flows.x`` would be two modules with two sets of globals."""
    offenders = []
    for folder in ("melflow", "flows", "tasks", "tests", "bench"):
        for path in (REPO / folder).rglob("*.py"):
            for line in path.read_text().splitlines():
                if re.match(r"\s*(from|import) (flows|tasks)\b", line):
                    offenders.append(f"{path.relative_to(REPO)}: {line.strip()}")
    assert offenders == []


def test_an_installed_melflow_finds_its_profiles(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = "import melflow.flows.cli; from melflow.config import list_profiles, load_config; "
    probe += "print(*list_profiles()); print(load_config('small').name)"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=elsewhere,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    listed, small = result.stdout.splitlines()
    assert {"default", "small", "fsdd"} <= set(listed.split()) and small == "small"
