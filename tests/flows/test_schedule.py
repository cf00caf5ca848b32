"""Schedules against a real ``prefect server`` on 127.0.0.1, served by ``melflow schedule``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import small_config
from integration.live_servers import HOST, Processes, answers, free_port, running, wait_for

from melflow.demo_corpus import generate_demo_corpus
from melflow.registry import show

pytestmark = pytest.mark.integration
MELFLOW = [sys.executable, "-m", "melflow.flows.cli"]
DEPLOYMENT = "scheduled-pipeline/pipeline-small"


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[tuple[Processes, dict[str, str]]]:
    """A real Prefect server on a free loopback port with its own SQLite database."""
    port = free_port()
    url = f"http://{HOST}:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "COLUMNS": "200",  # rich wraps tables at the terminal width; keep names on one line
    }
    with running(tmp_path / "logs") as procs:
        argv = [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            HOST,
            "--port",
            str(port),
        ]
        procs.start("prefect-server", argv, env=env)
        wait_for(lambda: answers(f"{url}/health"), timeout=90, what="prefect server")
        yield procs, {**env, "PREFECT_API_URL": url}


def melflow(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*MELFLOW, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_scheduled_deployment_runs_through_the_api(
    tmp_path: Path, prefect_server: tuple[Processes, dict[str, str]]
) -> None:
    procs, env = prefect_server
    sets = [
        f"paths.data_dir={tmp_path / 'data'}",
        f"corpus.root={tmp_path / 'corpus'}",
        "train.epochs=2",
    ]
    set_args = [arg for s in sets for arg in ("-s", s)]
    serve = [
        *MELFLOW,
        "schedule",
        "--flow",
        "pipeline",
        "--cron",
        "0 3 * * *",
        "-p",
        "small",
        *set_args,
    ]
    procs.start("serve", serve, env=env)
    wait_for(
        lambda: DEPLOYMENT in melflow(env, "schedule", "--list"),
        timeout=90,
        what="the deployment to be registered",
    )
    assert "0 3 * * *" in melflow(env, "schedule", "--list")

    trigger = subprocess.run(
        [
            sys.executable,
            "-c",
            "from prefect.deployments import run_deployment;"
            f"r = run_deployment({DEPLOYMENT!r}, timeout=600);"
            "print(r.state.type.value)",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=660,
    )
    assert trigger.stdout.strip().endswith("COMPLETED"), trigger.stdout + trigger.stderr[-3000:]
    champion = show(cfg=small_config(tmp_path, "train.epochs=2"), ref="champion")
    assert champion.version == "1"

    melflow(env, "schedule", "--remove", DEPLOYMENT)
    assert DEPLOYMENT not in melflow(env, "schedule", "--list")


RETRAIN = "scheduled-retrain/retrain-small"
WEAK = ("train.epochs=1", "train.lr=0.00001")


def _trigger(env: dict[str, str], overrides: list[str]) -> None:
    code = (
        "from prefect.deployments import run_deployment;"
        f"r = run_deployment({RETRAIN!r}, timeout=600,"
        f" parameters={{'profile': 'small', 'overrides': {overrides!r}}});"
        "print(r.state.type.value)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=660
    )
    assert done.stdout.strip().endswith("COMPLETED"), done.stdout + done.stderr[-3000:]


@pytest.mark.slow
def test_served_retrain_promotes_a_better_challenger_and_keeps_a_worse_one(
    tmp_path: Path, prefect_server: tuple[Processes, dict[str, str]]
) -> None:
    procs, env = prefect_server
    sets = [f"paths.data_dir={tmp_path / 'data'}", f"corpus.root={tmp_path / 'corpus'}"]
    set_args = [arg for s in sets for arg in ("-s", s)]
    weak_args = [arg for s in WEAK for arg in ("-s", s)]
    melflow(env, "run", "-p", "small", *set_args, *weak_args)  # a weak champion v1
    cfg = small_config(tmp_path)
    assert show(cfg=cfg, ref="champion").version == "1"
    serve = [*MELFLOW, "schedule", "--flow", "retrain", "--cron", "0 3 * * *", "-p", "small"]
    procs.start("serve-retrain", [*serve, *set_args], env=env)
    wait_for(
        lambda: RETRAIN in melflow(env, "schedule", "--list"),
        timeout=90,
        what="the retrain deployment to be registered",
    )

    demo = cfg.corpus.demo
    assert demo is not None
    generate_demo_corpus(root=cfg.corpus.root, per_class=demo.per_class + 2, sr=demo.sr)
    _trigger(env, sets)  # new clips, the profile's own training: better than v1
    better = show(cfg=cfg, ref="2")
    assert show(cfg=cfg, ref="champion").version == "2"
    assert better.tags["melflow.promotion.promoted"] == "True"
    assert better.tags["melflow.promotion.champion_rescored"] == "True"
    assert better.tags["melflow.promotion.eval_digest"] == better.eval_digest

    generate_demo_corpus(root=cfg.corpus.root, per_class=demo.per_class + 4, sr=demo.sr)
    _trigger(env, [*sets, *WEAK])  # new clips again, a weak training: stays challenger
    worse = show(cfg=cfg, ref="3")
    assert show(cfg=cfg, ref="champion").version == "2"
    assert worse.aliases == ["challenger"]
    assert worse.tags["melflow.promotion.promoted"] == "False"
    assert worse.tags["melflow.promotion.eval_digest"] == worse.eval_digest
    assert worse.tags["melflow.promotion.champion_rescored"] == "True"
