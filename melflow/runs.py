"""One run's lineage: every stage's reference (digest + location) and completion marker.

:func:`plan_stages` computes the references once per run from the manifest, the config
and (with ``train.init_from_champion``) the champion's bundle digest; the flow, the
Prefect cache keys and ``melflow status`` all read the same plan and the same markers:

- a store stage is done when its store is complete for the manifest
  (:meth:`~melflow.features.stage.StoreStage.cached`);
- training is done when ``runs/<train digest>/train-result.json`` exists;
- evaluation is done when ``runs/<train digest>/eval-<split>/evaluation.json`` exists.

Digests hold content only (manifest identity, config sections, code versions, bundle
bytes), never a path, so a copied or moved data folder stays complete. Saved results
hold locations relative to their folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from melflow import storage
from melflow.augment.offline import AUGMENT
from melflow.config import PipelineConfig
from melflow.digest import digest_of
from melflow.errors import ConfigError
from melflow.features.extract import EXTRACT
from melflow.layout import Layout, StageRef
from melflow.training.result import TRAIN_CODE_VERSION, TrainResult

if TYPE_CHECKING:  # torch, matplotlib and MLflow stay unloaded for readers of markers
    from melflow.registry import ChampionRescore, VersionInfo

TRAIN_RESULT = "train-result.json"
EVAL_SUMMARY = "evaluation.json"
EVAL_CODE_VERSION = "1"


@dataclass(frozen=True)
class StagePlan:
    """The references of one run's stages, computed once and handed down.

    ``augmented`` is ``None`` when training does not read the augmented store.
    ``init_bundle_digest`` is the champion bundle a fine-tuning run starts from.
    """

    manifest: StageRef
    features: StageRef
    augmented: StageRef | None
    train: StageRef
    evaluate: StageRef
    init_bundle_digest: str | None = None


def uses_augmented(cfg: PipelineConfig) -> bool:
    """True when training reads the augmented store."""
    return cfg.augment.enabled and cfg.train.use_augmented


def train_digest(
    cfg: PipelineConfig,
    *,
    features: StageRef,
    augmented: StageRef | None,
    init_bundle_digest: str | None = None,
) -> str:
    """Identity of a training run: its data (the filled stores), ``train`` config, code and
    the bundle it fine-tunes, if any."""
    return digest_of(
        "train",
        TRAIN_CODE_VERSION,
        features.digest,
        augmented.digest if augmented else None,
        cfg.train,
        init_bundle_digest,
    )


def eval_digest(*, model: str, manifest_digest: str, split: str) -> str:
    """Identity of an evaluation: the model (train or bundle digest), the manifest, the split."""
    return digest_of("evaluate", EVAL_CODE_VERSION, model, manifest_digest, split)


def plan_stages(
    cfg: PipelineConfig,
    manifest: StageRef,
    *,
    init_bundle_digest: str | None = None,
    split: str = "test",
) -> StagePlan:
    """Every stage's reference for ``manifest`` under ``cfg``.

    Parameters
    ----------
    manifest : StageRef
        Ingest's manifest (digest and location).
    init_bundle_digest : str, optional
        The bundle digest of the champion a ``train.init_from_champion`` run fine-tunes.
    split : str
        The split the evaluation scores.
    """
    layout = Layout.of(cfg)
    features = EXTRACT.ref(cfg, manifest.digest)
    augmented = AUGMENT.ref(cfg, manifest.digest) if uses_augmented(cfg) else None
    digest = train_digest(
        cfg, features=features, augmented=augmented, init_bundle_digest=init_bundle_digest
    )
    run = layout.run(digest)
    evaluation = StageRef(
        eval_digest(model=digest, manifest_digest=manifest.digest, split=split),
        layout.eval_dir(run, split),
    )
    return StagePlan(
        manifest=manifest,
        features=features,
        augmented=augmented,
        train=StageRef(digest, run),
        evaluate=evaluation,
        init_bundle_digest=init_bundle_digest,
    )


# -- training -----------------------------------------------------------------------------
def finished_training(run: str) -> TrainResult | None:
    """The saved result of a finished run, or ``None`` while it is missing or unfinished."""
    path = Path(run, TRAIN_RESULT)
    if not path.exists():
        return None
    result = TrainResult(**json.loads(path.read_text()))
    # The bundle is always ``<run>/bundle``: wherever the data folder now is.
    return replace(result, bundle_dir=str(Path(run, "bundle")))


def save_training(run: str, result: TrainResult) -> None:
    """Write the completion marker of a training run."""
    saved = {**asdict(result), "bundle_dir": "bundle"}
    storage.write_bytes_atomic(str(Path(run, TRAIN_RESULT)), json.dumps(saved).encode())


# -- evaluation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Evaluation:
    """References to an evaluation's outputs (the predictions stay on disk)."""

    report: dict[str, Any]
    report_path: str
    predictions_path: str
    figures: dict[str, str]
    html_path: str = ""

    def predictions(self) -> pd.DataFrame:
        """The per-clip predictions (``clip_id``, ``label``, ``pred``, ``prob_*``...)."""
        return pd.read_csv(self.predictions_path, dtype={"clip_id": str, "label": str, "pred": str})


def finished_evaluation(out_dir: str) -> Evaluation | None:
    """The saved evaluation in ``out_dir``, or ``None`` while it is missing."""
    path = Path(out_dir, EVAL_SUMMARY)
    if not path.exists():
        return None
    saved = json.loads(path.read_text())

    def resolve(name: str) -> str:
        return str(Path(out_dir, name))

    return Evaluation(
        report=saved["report"],
        report_path=resolve(saved["report_path"]),
        predictions_path=resolve(saved["predictions_path"]),
        figures={k: resolve(v) for k, v in saved["figures"].items()},
        html_path=resolve(saved["html_path"]) if saved.get("html_path") else "",
    )


def save_evaluation(out_dir: str, evaluation: Evaluation) -> None:
    """Write the completion marker of an evaluation (file locations relative to ``out_dir``)."""

    def relative(path: str) -> str:
        return str(Path(path).relative_to(out_dir)) if Path(path).is_relative_to(out_dir) else path

    saved = {
        "report": evaluation.report,
        "report_path": relative(evaluation.report_path),
        "predictions_path": relative(evaluation.predictions_path),
        "figures": {k: relative(v) for k, v in evaluation.figures.items()},
        "html_path": relative(evaluation.html_path) if evaluation.html_path else "",
    }
    storage.write_bytes_atomic(
        str(Path(out_dir, EVAL_SUMMARY)), json.dumps(saved, default=str).encode()
    )


def evaluate_into(
    *, cfg: PipelineConfig, manifest: pd.DataFrame, bundle_dir: str, out_dir: str, split: str
) -> Evaluation:
    """Score ``bundle_dir`` on ``split`` into ``out_dir`` (report, predictions, figures), once.

    A finished evaluation in ``out_dir`` is returned as is.
    """
    done = finished_evaluation(out_dir)
    if done is not None:
        return done
    from melflow.evaluation.evaluate import evaluate_bundle

    result = evaluate_bundle(
        cfg=cfg, manifest=manifest, bundle_dir=bundle_dir, split=split, out_dir=out_dir
    )
    evaluation = Evaluation(
        report=result.report,
        report_path=result.report_path,
        predictions_path=result.predictions_path,
        figures=result.figures,
        html_path=result.html_path,
    )
    save_evaluation(out_dir, evaluation)
    return evaluation


# -- the champion -------------------------------------------------------------------------
def champion_bundle_dir(cfg: PipelineConfig, champion: VersionInfo) -> str:
    """The champion's registered bundle, downloaded once into ``runs/_champion/<digest>``."""
    digest = champion.bundle_digest or f"v{champion.version}"
    dest = Layout.of(cfg).champion_dir(digest)
    bundle = Path(dest, "artifacts", "bundle")
    if bundle.is_dir():
        return str(bundle)
    from melflow.registry import download_bundle

    return download_bundle(cfg=cfg, version=champion.version, dest=dest)


def rescore_champion(
    cfg: PipelineConfig,
    *,
    manifest: StageRef,
    manifest_rows: pd.DataFrame,
    eval_digest_of_challenger: str | None,
    split: str = "test",
) -> ChampionRescore | None:
    """The champion's registered bundle scored on ``split`` of ``manifest``, when needed.

    ``None`` when there is no champion, when it was already scored on the challenger's set
    (same eval digest), or when its audio/feature settings differ from ``cfg`` (its
    features are not in this configuration's store; only a manual promotion can decide).
    The evaluation is kept in ``runs/_champion/<bundle digest>/eval-<manifest>-<split>``.
    """
    from melflow.registry import ChampionRescore, champion_info

    champion = champion_info(cfg=cfg)
    if champion is None or champion.eval_digest == eval_digest_of_challenger:
        return None
    bundle = champion_bundle_dir(cfg, champion)
    out = Layout.of(cfg).eval_dir(str(Path(bundle).parents[1]), f"{manifest.digest}-{split}")
    try:
        evaluation = evaluate_into(
            cfg=cfg, manifest=manifest_rows, bundle_dir=bundle, out_dir=out, split=split
        )
    except ConfigError:
        return None
    return ChampionRescore(
        version=champion.version, report=evaluation.report, predictions=evaluation.predictions()
    )
