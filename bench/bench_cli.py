"""What a user waits for: whole ``melflow`` commands, each in a fresh process.

- ``status``, ``models list`` and a fully cached ``run`` on the small profile, after one
  complete (untimed) run.
- The cold ``melflow extract`` command (ingest already done, no feature store yet) at two
  corpus sizes, against the naive per-file librosa loop on the same files; the ratio is
  taken within each repeat (this machine is shared: absolute rates move between runs).

Every timing is a median of :data:`REPEATS` with ``_min`` and ``_max`` (DESIGN.md section 6).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.bench_extract import naive_loop
from bench.timing import spread, timed
from melflow.config import PipelineConfig
from melflow.features.extract import feature_store_url

REPEATS = 5
ROOT = Path(__file__).resolve().parent.parent
MELFLOW = (sys.executable, "-m", "melflow")


def _env() -> dict[str, str]:
    # Each command starts as a user's would: no Prefect server given, quiet telemetry.
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return {**env, "DO_NOT_TRACK": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def melflow(*args: str) -> None:
    """Run one ``melflow`` command in a fresh process; raise with its stderr if it fails."""
    done = subprocess.run(
        [*MELFLOW, *args], cwd=ROOT, env=_env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"melflow {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def overrides(cfg: PipelineConfig) -> list[str]:
    """The ``-p``/``-s`` arguments that make a command use ``cfg``'s profile and folders."""
    demo = cfg.corpus.demo
    sets = [
        f"name={cfg.name}",
        f"paths.data_dir={cfg.paths.data_dir}",
        f"corpus.root={cfg.corpus.root}",
    ]
    if demo is not None:
        sets.append(f"corpus.demo.per_class={demo.per_class}")
    return ["-p", "default", *(a for s in sets for a in ("-s", s))]


def bench_commands(*, work: Path) -> dict[str, float]:
    """``status``, ``models list`` and a fully cached ``run`` on the small profile."""
    folder = work / "cli-small"
    small = ["-p", "small", "-s", f"paths.data_dir={folder / 'data'}"]
    small += ["-s", f"corpus.root={folder / 'corpus'}"]
    melflow("run", *small)  # the complete run the timed commands look at (untimed)
    results: dict[str, float] = {}
    for key, command in (
        ("status_s", ["status", *small]),
        ("models_list_s", ["models", "list", *small]),
        ("cached_run_s", ["run", *small]),
    ):
        results.update(timed(lambda c=command: melflow(*c), repeats=REPEATS).figures(key))
    return results


def extract_command_ratio(cfg: PipelineConfig, *, naive_clips: int) -> list[float]:
    """Per repeat: the whole cold ``melflow extract`` command's clips/s over the naive loop's.

    The naive loop runs over the first ``naive_clips`` files of the same corpus (its cost
    per file does not depend on how many follow); the command extracts them all.
    """
    from melflow.ingest import latest_manifest, load_manifest
    from melflow.manifest import ok_rows

    melflow("ingest", *overrides(cfg))  # done beforehand: the command finds it cached
    ingested = latest_manifest(cfg=cfg)
    assert ingested is not None
    paths = list(ok_rows(load_manifest(ingested))["path"])
    sample = paths[:naive_clips]
    naive_loop(sample[:20], cfg)  # librosa compiles on its first call: time steady state
    store = feature_store_url(cfg)
    ratios = []
    for _ in range(REPEATS):
        naive = timed(lambda: naive_loop(sample, cfg), repeats=1).median
        shutil.rmtree(store, ignore_errors=True)
        start = time.perf_counter()
        melflow("extract", *overrides(cfg))
        command = time.perf_counter() - start
        ratios.append((len(paths) / command) / (len(sample) / naive))
    return ratios


def bench_cli(
    *, work: Path, corpora: dict[str, PipelineConfig], naive_clips: int = 2000
) -> dict[str, float]:
    """The ``cli`` section: command wall times and the cold extract command vs naive.

    ``corpora`` maps a size name (``3k``, ``30k``) to a profile whose corpus is generated.
    """
    results = bench_commands(work=work)
    for name, cfg in corpora.items():
        ratios = extract_command_ratio(cfg, naive_clips=naive_clips)
        results.update(spread(f"extract_cmd_{name}_ratio_vs_naive", ratios))
    return results
