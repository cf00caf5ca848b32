"""The training loop: learning, checkpoints, resume after SIGKILL, options, warm start."""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from synthetic_store import synthetic, with_overrides, write_synthetic_store

from melflow.config import PipelineConfig
from melflow.errors import StoreError
from melflow.features.extract import feature_store_url
from melflow.features.store import RowStore
from melflow.models import load_bundle, predict_features
from melflow.training.dataset import select_split
from melflow.training.loop import class_weights, train_model

FAST = (
    "train.model.channels=[8,16]",
    "train.model.hidden=32",
    "train.batch_size=16",
    "train.patience=0",
)


def _weights(bundle_dir: str) -> dict[str, torch.Tensor]:
    return torch.load(Path(bundle_dir, "model.pt"), weights_only=True)


def _assert_same_weights(a: str, b: str) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_training_learns_and_writes_a_bundle(small_cfg: PipelineConfig, tmp_path: Path) -> None:
    cfg, manifest = synthetic(small_cfg, *FAST, "train.epochs=6", "train.lr=0.003", per_class=30)
    epochs: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    result = train_model(
        cfg=cfg,
        manifest=manifest,
        run_dir=str(tmp_path / "run"),
        on_epoch=epochs.append,
        on_step=steps.append,
    )
    assert result.classes == ["c0", "c1", "c2", "c3"]
    assert result.epochs_run == len(result.history) == 6
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5, 6]
    assert set(result.history[0]) == {
        "epoch",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "val_macro_f1",
        "lr",
    }
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    best = result.history[result.best_epoch - 1]
    assert best["val_macro_f1"] == max(h["val_macro_f1"] for h in result.history) >= 0.9
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5, 6] and epochs[0]["epochs"] == 6
    assert len(steps) == 6 * steps[0]["steps"] and steps[0]["steps"] == math.ceil(72 / 16)
    # cosine schedule: the LR falls every epoch
    lrs = [h["lr"] for h in result.history]
    assert lrs[0] == cfg.train.lr and all(a > b for a, b in itertools.pairwise(lrs))

    model, meta = load_bundle(result.bundle_dir)
    assert meta.classes == result.classes and (meta.n_bins, meta.n_frames) == (32, 32)
    store = RowStore(feature_store_url(cfg))
    test = select_split(
        store, manifest=manifest, split="test", feature="logmel", classes=meta.classes
    )
    probs = predict_features(
        model, meta, np.concatenate([test.read_chunk(int(c))[0] for c in test.chunk_ids()])
    )
    assert (probs.argmax(axis=1) == test.labels).mean() >= 0.9
    history = json.loads(Path(result.bundle_dir, "history.json").read_text())
    assert history == result.history


def test_augmented_rows_join_the_train_batches(small_cfg: PipelineConfig, tmp_path: Path) -> None:
    cfg, manifest = synthetic(small_cfg, *FAST, "train.epochs=1", per_class=8)
    url = str(tmp_path / "augmented")
    write_synthetic_store(cfg, manifest, url=url, variants=2)
    n_train = int((manifest["split"] == "train").sum())
    for use, rows in ((True, 3 * n_train), (False, n_train)):
        steps: list[dict[str, Any]] = []
        train_model(
            cfg=with_overrides(cfg, f"train.use_augmented={str(use).lower()}"),
            manifest=manifest,
            run_dir=str(tmp_path / str(use)),
            augmented_store_url=url,
            on_step=steps.append,
        )
        assert steps[0]["steps"] == math.ceil(rows / 16)


def test_finished_run_is_not_trained_again(small_cfg: PipelineConfig, tmp_path: Path) -> None:
    cfg, manifest = synthetic(small_cfg, *FAST, "train.epochs=2", per_class=8)
    first = train_model(cfg=cfg, manifest=manifest, run_dir=str(tmp_path / "run"))
    calls: list[dict[str, Any]] = []
    again = train_model(
        cfg=cfg, manifest=manifest, run_dir=str(tmp_path / "run"), on_epoch=calls.append
    )
    assert calls == [] and again == first
    other = with_overrides(cfg, "train.lr=0.01")
    with pytest.raises(StoreError, match="another training setup"):
        train_model(cfg=other, manifest=manifest, run_dir=str(tmp_path / "run"))


def test_early_stopping_on_val_macro_f1(small_cfg: PipelineConfig, tmp_path: Path) -> None:
    # a vanishing LR cannot improve val macro-F1, so training stops after 1 + patience epochs
    cfg, manifest = synthetic(
        small_cfg,
        *FAST,
        "train.epochs=20",
        "train.patience=2",
        "train.lr=1e-9",
        "train.scheduler=none",
        per_class=8,
    )
    result = train_model(cfg=cfg, manifest=manifest, run_dir=str(tmp_path / "run"))
    assert result.epochs_run == 3 and result.best_epoch == 1


@pytest.mark.parametrize(
    "options",
    [
        (
            "train.optimizer=sgd",
            "train.scheduler=step",
            "train.step_size=1",
            "train.gamma=0.5",
            "train.label_smoothing=0.1",
            "train.class_weights=true",
        ),
        (
            "train.optimizer=adamw",
            "train.scheduler=plateau",
            "train.spec_augment.enabled=true",
            "train.mixup.enabled=true",
            "train.model.arch=resnet",
        ),
    ],
)
def test_options_are_deterministic(
    small_cfg: PipelineConfig, tmp_path: Path, options: tuple[str, ...]
) -> None:
    cfg, manifest = synthetic(small_cfg, *FAST, "train.epochs=3", *options, per_class=8)
    a = train_model(cfg=cfg, manifest=manifest, run_dir=str(tmp_path / "a"))
    b = train_model(cfg=cfg, manifest=manifest, run_dir=str(tmp_path / "b"))
    assert a.history == b.history
    assert all(np.isfinite(h["train_loss"]) for h in a.history)
    _assert_same_weights(a.bundle_dir, b.bundle_dir)
    if cfg.train.scheduler == "step":
        assert [h["lr"] for h in a.history] == pytest.approx(
            [cfg.train.lr * 0.5**i for i in range(3)]
        )


def test_class_weights_are_inverse_frequency() -> None:
    weights = class_weights(np.array([0, 0, 0, 1]), 3)
    np.testing.assert_allclose(weights.numpy(), [4 / 9, 4 / 3, 0.0], rtol=1e-6)


def test_warm_start_copies_matching_tensors(small_cfg: PipelineConfig, tmp_path: Path) -> None:
    cfg, manifest = synthetic(small_cfg, *FAST, "train.epochs=1", per_class=8, n_classes=3)
    source = train_model(cfg=cfg, manifest=manifest, run_dir=str(tmp_path / "src"))
    state = _weights(source.bundle_dir)
    cfg4, manifest4 = synthetic(
        small_cfg,
        *FAST,
        "train.epochs=1",
        "train.lr=1e-12",
        "train.scheduler=none",
        per_class=8,
        n_classes=4,
    )
    warm = train_model(
        cfg=cfg4, manifest=manifest4, run_dir=str(tmp_path / "warm"), init_state=state
    )
    weights = _weights(warm.bundle_dir)
    first_conv = "body.features.0.weight"
    torch.testing.assert_close(weights[first_conv], state[first_conv])
    head = [k for k in weights if k.startswith("body.head.") and k.endswith("weight")][-1]
    assert weights[head].shape[0] == 4 != state[head].shape[0]
    with pytest.raises(StoreError, match="no tensor of matching shape"):
        train_model(
            cfg=cfg4,
            manifest=manifest4,
            run_dir=str(tmp_path / "bad"),
            init_state={"nothing": torch.zeros(1)},
        )


RUNNER = """
import json, sys
import pandas as pd
from melflow.config import validate_config
from melflow.training.loop import train_model
cfg = validate_config(json.loads(open(sys.argv[1]).read()))
train_model(cfg=cfg, manifest=pd.read_parquet(sys.argv[2]), run_dir=sys.argv[3])
"""


@pytest.mark.integration
def test_resume_after_sigkill_gives_identical_weights(
    small_cfg: PipelineConfig, tmp_path: Path
) -> None:
    cfg, manifest = synthetic(
        small_cfg,
        *FAST,
        "train.epochs=4",
        "train.batch_size=8",
        "train.spec_augment.enabled=true",
        per_class=16,
    )
    cfg_path, manifest_path = tmp_path / "cfg.json", tmp_path / "manifest.parquet"
    cfg_path.write_text(json.dumps(cfg.model_dump(mode="json")))
    manifest.to_parquet(manifest_path)
    run_dir = tmp_path / "killed"
    command = [sys.executable, "-c", RUNNER, str(cfg_path), str(manifest_path), str(run_dir)]
    checkpoint = run_dir / "checkpoints" / "last.pt"
    proc = subprocess.Popen(command, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = torch.load(io.BytesIO(checkpoint.read_bytes()), weights_only=True)
    assert 1 <= state["epoch"] < cfg.train.epochs and not (run_dir / "bundle").exists()

    subprocess.run(command, check=True, timeout=300)
    reference = train_model(cfg=cfg, manifest=manifest, run_dir=str(tmp_path / "straight"))
    resumed = train_model(cfg=cfg, manifest=manifest, run_dir=str(run_dir))  # finished: just reads
    assert resumed.history == reference.history and resumed.best_epoch == reference.best_epoch
    _assert_same_weights(resumed.bundle_dir, reference.bundle_dir)
