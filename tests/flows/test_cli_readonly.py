"""Read-only commands never load Prefect (so never start a server); JSON output parses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import small_config, tone

PROBE = """
import importlib, sys
cli = importlib.import_module("melflow.flows.cli")
sys.argv = ["melflow", *sys.argv[1:]]
try:
    cli.main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(f"\\nexit={code} prefect={'prefect' in sys.modules}", file=sys.stderr)
"""


def _run(*args: str) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300
    )
    return done.stdout, done.stderr.strip().splitlines()[-1]


@pytest.mark.integration
def test_status_models_profiles_and_predict_never_load_prefect(tmp_path: Path) -> None:
    import soundfile as sf

    cfg = small_config(tmp_path)
    data = ["-p", "small", "-s", f"paths.data_dir={cfg.paths.data_dir}"]
    data += ["-s", f"corpus.root={cfg.corpus.root}"]
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone(440.0, sr=16000, duration_s=0.5), 16000)
    out, last = _run("status", "--json", *data)
    assert last == "exit=0 prefect=False"
    assert [row["stage"] for row in json.loads(out)["stages"]] == ["ingest"]
    out, last = _run("models", "list", "--json", *data)
    assert last == "exit=0 prefect=False" and json.loads(out)["versions"] == []
    assert _run("profiles")[1] == "exit=0 prefect=False"
    # No registered model: one error line, and Prefect still not loaded.
    assert _run("predict", str(clip), *data)[1] == "exit=2 prefect=False"
