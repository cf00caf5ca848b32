"""Evaluation of a trained bundle on the test split as a cached Prefect task."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefect import task

from melflow import storage
from melflow.config import PipelineConfig
from melflow.digest import digest_of
from melflow.evaluation.evaluate import evaluate_bundle
from melflow.manifest import read_manifest
from tasks.caching import keyed_by

SUMMARY_FILE = "evaluation.json"


@dataclass(frozen=True)
class Evaluation:
    """References to an evaluation's outputs (the predictions stay on disk)."""

    report: dict[str, Any]
    report_path: str
    predictions_path: str
    figures: dict[str, str]
    html_path: str = ""  # absent from summaries written before report.html existed


def eval_dir(bundle_dir: str, split: str) -> str:
    return str(Path(bundle_dir).parent / f"eval-{split}")


def finished_evaluation(bundle_dir: str, split: str) -> Evaluation | None:
    path = Path(eval_dir(bundle_dir, split), SUMMARY_FILE)
    return Evaluation(**json.loads(path.read_text())) if path.exists() else None


def _eval_key(
    *, cfg: PipelineConfig, manifest_path: str, manifest_digest: str, bundle_dir: str, split: str
) -> str | None:
    if finished_evaluation(bundle_dir, split) is None:
        return None
    return digest_of("evaluate", bundle_dir, manifest_digest, split)


@task(name="evaluate-model", cache_key_fn=keyed_by("evaluate", _eval_key), persist_result=True)
def evaluate_task(
    cfg: PipelineConfig,
    manifest_path: str,
    manifest_digest: str,
    bundle_dir: str,
    split: str = "test",
) -> Evaluation:
    """Score the bundle on ``split``; writes report JSON and HTML, predictions CSV, figures."""
    done = finished_evaluation(bundle_dir, split)
    if done is not None:
        return done
    manifest = read_manifest(manifest_path, storage_options=cfg.paths.storage_options)
    out = eval_dir(bundle_dir, split)
    result = evaluate_bundle(
        cfg=cfg, manifest=manifest, bundle_dir=bundle_dir, split=split, out_dir=out
    )
    evaluation = Evaluation(
        report=result.report,
        report_path=result.report_path,
        predictions_path=result.predictions_path,
        figures=result.figures,
        html_path=result.html_path,
    )
    summary = json.dumps(asdict(evaluation), default=str).encode()
    storage.write_bytes_atomic(str(Path(out, SUMMARY_FILE)), summary)
    return evaluation
