"""End to end on the small profile: ingest -> extract -> train -> evaluate the bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import render

from melflow.config import PipelineConfig, apply_overrides, validate_config
from melflow.errors import ConfigError
from melflow.evaluation.evaluate import evaluate_bundle
from melflow.features.extract import extract_features
from melflow.ingest import ingest_corpus, load_manifest
from melflow.training.loop import train_model


def test_small_profile_end_to_end(
    small_cfg: PipelineConfig, small_corpus: Path, dask_client_inproc: object, tmp_path: Path
) -> None:
    manifest = load_manifest(ingest_corpus(cfg=small_cfg))
    extract_features(manifest=manifest, cfg=small_cfg, client=dask_client_inproc)  # type: ignore[arg-type]
    trained = train_model(cfg=small_cfg, manifest=manifest, run_dir=str(tmp_path / "run"))
    assert len(trained.classes) == 6

    result = evaluate_bundle(
        cfg=small_cfg,
        manifest=manifest,
        bundle_dir=trained.bundle_dir,
        out_dir=str(tmp_path / "eval"),
    )
    report = result.report
    test = manifest[(manifest["split"] == "test") & (manifest["status"] == "ok")]
    assert report["support"] == len(test) and report["n_unknown_label"] == 0
    assert report["accuracy"] >= 0.6  # chance is 1/6
    assert report["macro_f1"] >= 0.5

    predictions = result.predictions
    assert list(predictions.columns) == [
        "clip_id",
        "label",
        "pred",
        *(f"prob_{c}" for c in trained.classes),
    ]
    assert sorted(predictions["clip_id"]) == sorted(test["clip_id"])
    truth = dict(zip(test["clip_id"], test["label"].astype(str), strict=True))
    assert [truth[c] for c in predictions["clip_id"]] == predictions["label"].tolist()
    probs = predictions[[f"prob_{c}" for c in trained.classes]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert (np.array(trained.classes)[probs.argmax(axis=1)] == predictions["pred"]).all()
    assert (predictions["label"] == predictions["pred"]).mean() == pytest.approx(report["accuracy"])

    assert json.loads(Path(result.report_path).read_text()) == report
    pd.testing.assert_frame_equal(
        pd.read_csv(result.predictions_path), predictions, check_dtype=False
    )
    assert set(result.figures) == {"confusion_matrix", "training_curves", "spectrograms"}
    assert all(Path(p).stat().st_size > 10_000 for p in result.figures.values())

    page = Path(result.html_path)
    assert page.parent == tmp_path / "eval"
    wrong = int((predictions["label"] != predictions["pred"]).sum())
    assert page.read_text().count("<audio ") == min(wrong, 8)
    assert page.read_text().count("data:image/png;base64,") == 3
    assert render(page, workdir=tmp_path).console == []

    other = validate_config(
        apply_overrides(small_cfg.model_dump(mode="json"), ["features.n_mels=16"])
    )
    with pytest.raises(ConfigError, match="other audio/features"):
        evaluate_bundle(
            cfg=other, manifest=manifest, bundle_dir=trained.bundle_dir, out_dir=str(tmp_path)
        )
