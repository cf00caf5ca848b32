"""Every bad input to ``melflow`` is one ``error:`` line and exit status 2, before any work."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
from conftest import small_config, tone
from typer.testing import CliRunner

from melflow.flows.cli import app, hoist_verbose
from melflow.ingest import ingest_corpus, load_manifest


def _melflow(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _assert_one_error_line(code: int, output: str, *needles: str) -> None:
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    for needle in needles:
        assert needle in lines[0], output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_bad_cron_is_refused_before_serving() -> None:
    code, output = _melflow("schedule", "-p", "small", "--cron", "61 * * * *")
    _assert_one_error_line(code, output, "--cron '61 * * * *'", "0 3 * * *")


def test_a_data_folder_below_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    data = tmp_path / "afile" / "data"
    code, output = _melflow("ingest", "-p", "small", "-s", f"paths.data_dir={data}")
    _assert_one_error_line(code, output, "paths.data_dir", "is a file, not a folder")


def test_a_data_folder_under_proc() -> None:
    if not Path("/proc/mounts").exists():
        pytest.skip("no /proc on this system")
    code, output = _melflow("ingest", "-p", "small", "-s", "paths.data_dir=/proc/melflow")
    _assert_one_error_line(code, output, "/proc/melflow", "virtual proc file system")


@pytest.fixture
def immutable_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can write to, root included (``chattr +i``; else ``chmod``)."""
    folder = tmp_path / "frozen"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    if shutil.which("chattr") is None:
        pytest.skip("root, and no chattr to make a folder immutable")
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {made.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_an_unwritable_data_folder_is_found_before_the_corpus_is_probed(
    tmp_path: Path, immutable_folder: Path
) -> None:
    cfg = small_config(tmp_path)
    code, output = _melflow(
        "ingest",
        "-p",
        "small",
        "-s",
        f"paths.data_dir={immutable_folder}",
        "-s",
        f"corpus.root={cfg.corpus.root}",
    )
    _assert_one_error_line(code, output, "cannot write there")
    assert not Path(cfg.corpus.root).exists()  # not even the demo corpus was generated
    assert list(immutable_folder.iterdir()) == []


def test_a_missing_corpus_root_fails_before_any_server(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    args = ["-s", f"corpus.root={missing}", "-s", "corpus.demo=null"]
    code, output = _melflow("ingest", "-p", "small", *args, "-s", f"paths.data_dir={tmp_path}")
    _assert_one_error_line(code, output, "corpus.root", "does not exist")


def test_an_unreachable_dask_scheduler_or_mlflow_server(tmp_path: Path) -> None:
    data = ["-s", f"paths.data_dir={tmp_path / 'data'}"]
    address = f"tcp://127.0.0.1:{_free_port()}"
    code, output = _melflow("extract", "-p", "small", *data, "--dask-address", address)
    _assert_one_error_line(code, output, f"no Dask scheduler answers at {address}")
    uri = f"http://127.0.0.1:{_free_port()}"
    for command in (["models", "list"], ["run"]):
        code, output = _melflow(
            *command, "-p", "small", *data, "-s", f"registry.tracking_uri={uri}"
        )
        _assert_one_error_line(code, output, f"no MLflow server answers at {uri}")


def test_storage_options_with_a_local_data_folder_are_accepted(tmp_path: Path) -> None:
    cfg = small_config(tmp_path, "paths.storage_options={anon: true}")
    result = ingest_corpus(cfg=cfg)
    assert result.n_ok == 72 and Path(result.manifest_path).is_file()


def test_a_folder_named_like_an_audio_file_gets_a_quarantine_row(tmp_path: Path) -> None:
    cfg = small_config(tmp_path, "corpus.demo=null")
    for i, name in enumerate(("dog/a.wav", "dog/b.wav", "cat/c.wav", "cat/d.wav")):
        path = Path(cfg.corpus.root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(300.0 + 100 * i, sr=16000, duration_s=0.5), 16000)
    inner = Path(cfg.corpus.root, "cat", "folder.wav")
    inner.mkdir()
    sf.write(inner / "e.wav", tone(660.0, sr=16000, duration_s=0.5), 16000)
    manifest = load_manifest(ingest_corpus(cfg=cfg)).set_index("path")
    paths = [str(p) for p in manifest.index]
    folder_row = manifest.loc[next(p for p in paths if p.endswith("cat/folder.wav"))]
    assert folder_row["status"] != "ok" and "not a regular file" in str(folder_row.to_dict())
    assert (manifest["status"] == "ok").sum() == 5  # the clip inside the folder still counts


def test_an_ephemeral_prefect_server_timeout_is_one_error_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "0"
    env["MELFLOW_PREFECT"] = "always"  # without a server to record to, none would start
    cfg = small_config(tmp_path)
    data = ["-s", f"paths.data_dir={cfg.paths.data_dir}", "-s", f"corpus.root={cfg.corpus.root}"]
    proc = subprocess.run(
        [sys.executable, "-m", "melflow", "ingest", "-p", "small", *data],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    _assert_one_error_line(proc.returncode, proc.stderr, "temporary Prefect server")
    assert proc.stdout == ""


def test_verbose_is_read_anywhere_on_the_line() -> None:
    assert hoist_verbose(["status", "-p", "small", "-v"]) == ["-v", "status", "-p", "small"]
    assert hoist_verbose(["run", "--verbose", "--", "-v"]) == ["-v", "run", "--", "-v"]
    assert hoist_verbose(["status"]) == ["status"]
