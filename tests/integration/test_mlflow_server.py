"""The registry against a real ``mlflow server`` on 127.0.0.1 (artifacts proxied by it)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bundles import tiny_bundle
from conftest import small_config, tone
from live_servers import HOST, answers, free_port, running, wait_for

from melflow.evaluation.metrics import classification_report
from melflow.models import load_bundle, predict_waveforms
from melflow.registry import (
    CHALLENGER,
    CHAMPION,
    compare,
    list_versions,
    load_champion,
    log_and_register,
    promote_if_better,
    show,
    tracking_uri,
)

pytestmark = pytest.mark.integration
CLASSES = ["high", "low", "mid"]
FREQS = (3000.0, 200.0, 900.0)
N_EVAL = 30


@dataclass
class Server:
    uri: str
    artifacts: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    argv = [
        sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(port),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    uri = f"http://{HOST}:{port}"
    with running(root / "logs") as procs:
        # MLflow's GenAI job runner (7 extra processes) is not used by melflow.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        procs.start("mlflow", argv, env=env, cwd=root)
        wait_for(lambda: answers(f"{uri}/health"), timeout=60, what="the mlflow server")
        yield Server(uri, root / "artifacts")


def eval_predictions(wrong: set[int]) -> pd.DataFrame:
    """Predictions on one fixed 30-clip evaluation set, wrong exactly on ``wrong``."""
    labels = [CLASSES[i % 3] for i in range(N_EVAL)]
    preds = [CLASSES[(i + 1) % 3] if i in wrong else y for i, y in enumerate(labels)]
    clip_ids = [f"c{i:02d}" for i in range(N_EVAL)]
    return pd.DataFrame({"clip_id": clip_ids, "label": labels, "pred": preds})


def test_register_gate_and_load_the_champion_through_the_server(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = small_config(tmp_path, f"registry.tracking_uri={server.uri}")
    assert tracking_uri(cfg) == server.uri
    for seed, wrong in ((0, {0, 1}), (1, set(range(9)))):  # the second one is worse
        bundle = str(tmp_path / f"bundle{seed}")
        tiny_bundle(cfg, bundle, classes=CLASSES, seed=seed)
        predictions = eval_predictions(wrong)
        registered = log_and_register(
            cfg=cfg,
            bundle_dir=bundle,
            history=[{"epoch": 1, "train_loss": 1.0, "val_macro_f1": 0.5}],
            report=classification_report(
                y_true=predictions["label"], y_pred=predictions["pred"], classes=CLASSES
            ),
            artifacts=[],
            tags={"melflow.manifest_digest": "m"},
            predictions=predictions,
        )
        decision = promote_if_better(cfg=cfg, version=registered.version)
        assert (registered.version, decision.promoted) == (str(seed + 1), seed == 0)

    versions = list_versions(cfg=cfg)
    assert list(versions["version"]) == ["2", "1"]
    assert list(versions["aliases"]) == [CHALLENGER, CHAMPION]
    np.testing.assert_allclose(versions["accuracy"], [21 / 30, 28 / 30])
    assert show(cfg=cfg, ref=CHALLENGER).tags["melflow.promotion.promoted"] == "False"
    assert compare(cfg=cfg, a=CHAMPION, b=CHALLENGER).loc["accuracy", "delta"] == pytest.approx(
        -7 / 30
    )
    # Everything went to the server: its artifact store holds the runs, data_dir holds nothing.
    assert list(server.artifacts.rglob("predictions.csv"))
    assert not (tmp_path / "data").exists()

    champion = load_champion(cfg=cfg)
    sr = cfg.audio.sr
    clips = np.stack([tone(f, sr=sr, duration_s=cfg.audio.duration_s) for f in FREQS])
    got = champion.predict(pd.DataFrame({"waveform": [c.tolist() for c in clips], "sr": [sr] * 3}))
    model, meta = load_bundle(str(tmp_path / "bundle0"))
    expected = predict_waveforms(model, meta, clips, sr=sr)
    np.testing.assert_allclose(got[[f"prob_{c}" for c in CLASSES]].to_numpy(), expected, atol=1e-5)

    listed = subprocess.run(
        [sys.executable, "-m", "melflow.flows.cli", "models", "list", "-p", "small",
         "-s", f"paths.data_dir={tmp_path / 'data'}"],
        env={**os.environ, "MLFLOW_TRACKING_URI": server.uri, "COLUMNS": "200"},
        cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert server.uri in listed.stdout
    rows = [line for line in listed.stdout.splitlines() if CHAMPION in line or CHALLENGER in line]
    assert len(rows) == 2 and "0.9333" in rows[1] and "0.7000" in rows[0]
    assert "Traceback" not in listed.stderr
