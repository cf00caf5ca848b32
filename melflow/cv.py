"""Cross-validation: folds of a manifest, one training and test per fold, pooled scores.

A fold's name comes from (``cv.folds_from``):

- ``column``: the manifest's ``fold`` column (ingest reads ``corpus.fold_column``),
- ``path_regex``: the named group ``(?P<fold>...)`` of ``cv.fold_regex`` searched in the
  clip's corpus-relative path (``fold3/dog/x.wav`` -> ``3``),
- ``kfold``: ``cv.k`` stratified, grouped folds: each class's groups, in the order of
  their seeded fixed point (:func:`melflow.ingest.splits.group_unit`), are dealt round
  the folds, so a group never spans folds and every fold holds every class it can.

Fold ``f`` tests on its clips and trains on all others, minus a stratified, grouped
validation split (:func:`melflow.ingest.splits.stratified_val`) for early stopping. Each
fold is run by a :data:`~melflow.sweep.run.FoldRunner` (by default
:func:`~melflow.sweep.run.train_test_fold`) in its own content-addressed folder, so a killed
run resumes, a finished fold is read back, and an architecture sweep can call
:func:`run_cv` once per grid point. Every fold reads the one clean feature store (and the
one augmented store), which therefore must hold every clip: folds never re-extract.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from melflow import storage
from melflow.config import CvConfig, PipelineConfig
from melflow.digest import digest_of
from melflow.errors import ConfigError, MelflowError
from melflow.features.extract import feature_store_digest
from melflow.ingest.splits import group_unit, stratified_val
from melflow.manifest import OK, manifest_digest
from melflow.sweep.run import Fold, FoldRunner, FoldScore, train_test_fold
from melflow.training.loop import TRAIN_CODE_VERSION

CV_CODE_VERSION = "1"
FOLD_FILE = "fold.json"
REPORT = Path("eval-test", "report.json")  # written by train_test_fold's evaluation


def _regex_folds(clip_ids: pd.Series, pattern: str) -> pd.Series:
    regex = re.compile(pattern)

    def fold_of(clip_id: str) -> str:
        match = regex.search(clip_id)
        return (match.group("fold") or "") if match else ""

    return clip_ids.astype(str).map(fold_of)


def _kfolds(manifest: pd.DataFrame, *, k: int, seed: int) -> pd.Series:
    """Stratified, grouped k folds ``"1"`` .. ``"k"`` (see the module docstring)."""
    groups = manifest["group"].astype(str)
    # a group spanning classes is dealt with its most frequent label
    label_of = manifest.assign(label=manifest["label"].astype(str)).groupby(groups)["label"]
    majority = label_of.agg(lambda s: s.value_counts().index[0])
    fold_of: dict[str, str] = {}
    position = 0  # carried across classes so small classes do not all start at fold 1
    for label in sorted(majority.unique()):
        members = sorted(majority.index[majority == label], key=lambda g: (group_unit(seed, g), g))
        for group in members:
            fold_of[group] = str(position % k + 1)
            position += 1
    return groups.map(fold_of)


def fold_names(manifest: pd.DataFrame, cv: CvConfig) -> pd.Series:
    """The fold name of every manifest row (``""`` where none is known).

    Raises
    ------
    ConfigError
        A usable clip has no fold, or fewer than 2 folds were found.
    """
    if cv.folds_from == "kfold":
        names = _kfolds(manifest, k=cv.k, seed=cv.seed)
    elif cv.folds_from == "path_regex":
        names = _regex_folds(manifest["clip_id"], str(cv.fold_regex))
    else:
        folds = manifest["fold"].astype(int)
        names = folds.map(lambda f: str(f) if f >= 0 else "")
    ok = (manifest["status"] == OK).to_numpy()
    missing = ok & (names == "").to_numpy()
    if missing.any():
        where = {
            "column": "the manifest's fold column (corpus.fold_column)",
            "path_regex": f"cv.fold_regex {cv.fold_regex!r}",
        }[cv.folds_from]
        examples = list(manifest.loc[missing, "clip_id"][:3])
        raise ConfigError(
            f"{int(missing.sum())} usable clips have no fold in {where}, e.g. {examples}; "
            "fix the folds or use cv.folds_from=kfold"
        )
    found = sorted(set(names[ok]), key=_natural)
    if len(found) < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, found {found}")
    return names.rename("cv_fold")


def _natural(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isdigit() else (1, name)


def make_folds(manifest: pd.DataFrame, cv: CvConfig) -> list[Fold]:
    """One :class:`~melflow.sweep.run.Fold` per fold name (``cv.only`` keeps a subset).

    The fold's manifest is the input with ``split`` rewritten: ``test`` for the fold's
    clips, a stratified grouped ``val`` share of the rest (``cv.val_fraction``), ``train``
    otherwise.
    """
    names = fold_names(manifest, cv)
    ok = manifest["status"] == OK
    every = sorted(set(names[ok]), key=_natural)
    unknown = sorted(set(cv.only) - set(every))
    if unknown:
        raise ConfigError(f"cv.only names folds {unknown} that do not exist; folds are {every}")
    folds = []
    for name in every:
        if cv.only and name not in cv.only:
            continue
        split = np.where(names == name, "test", "train").astype(object)
        if cv.val_fraction > 0:
            split = stratified_val(manifest, split, fraction=cv.val_fraction, seed=cv.seed)
        folds.append(Fold(name=name, manifest=manifest.assign(split=split)))
    return folds


@dataclass(frozen=True)
class FoldResult:
    """A fold's scores, its confusion matrix (rows = truth, in ``classes`` order) and sizes."""

    score: FoldScore
    classes: list[str]
    confusion: list[list[int]]
    n_train: int
    n_val: int
    n_test: int
    run_dir: str


@dataclass(frozen=True)
class CvResult:
    """Every fold's result and the pooled scores.

    Means and standard deviations (population, as in the sweep table) are over folds;
    ``confusion`` is the sum of the folds' matrices (each test clip counted once).
    """

    classes: list[str]
    folds: list[FoldResult]

    def _values(self, name: str) -> list[float]:
        return [float(getattr(f.score, name)) for f in self.folds]

    def summary(self) -> dict[str, float]:
        """``accuracy_mean``, ``accuracy_std``, ``macro_f1_mean``, ``macro_f1_std``."""
        out: dict[str, float] = {}
        for name in ("accuracy", "macro_f1"):
            values = self._values(name)
            out[f"{name}_mean"] = statistics.fmean(values)
            out[f"{name}_std"] = statistics.pstdev(values)
        return out

    @property
    def confusion(self) -> list[list[int]]:
        total = np.sum([np.asarray(f.confusion, dtype=np.int64) for f in self.folds], axis=0)
        return [[int(v) for v in row] for row in total]


def cv_digest(cfg: PipelineConfig, fold: Fold, augmented_store_url: str | None) -> str:
    """Identity of one fold's run: its data (store, fold manifest), ``train`` config, code."""
    return digest_of(
        "cv-fold",
        CV_CODE_VERSION,
        TRAIN_CODE_VERSION,
        feature_store_digest(cfg),
        manifest_digest(fold.manifest),
        augmented_store_url,
        cfg.train,
    )


def _counts(fold: Fold) -> dict[str, int]:
    usable = fold.manifest[fold.manifest["status"] == OK]
    counts = usable["split"].value_counts()
    return {f"n_{s}": int(counts.get(s, 0)) for s in ("train", "val", "test")}


def run_fold(
    cfg: PipelineConfig,
    fold: Fold,
    *,
    work_dir: str,
    augmented_store_url: str | None = None,
    runner: FoldRunner | None = None,
) -> FoldResult:
    """Train and test one fold in ``work_dir/<fold digest>``; a finished fold is read back.

    ``runner`` defaults to :func:`~melflow.sweep.run.train_test_fold`; it must leave the
    test report at ``<run_dir>/eval-test/report.json``.
    """
    run_dir = str(Path(work_dir, cv_digest(cfg, fold, augmented_store_url)))
    done = Path(run_dir, FOLD_FILE)
    if done.exists():
        saved = json.loads(done.read_text())
        return FoldResult(**{**saved, "score": FoldScore(**saved["score"])})
    if runner is None:
        score = train_test_fold(cfg, fold, run_dir, augmented_store_url=augmented_store_url)
    else:
        score = runner(cfg, fold, run_dir)
    report = json.loads(Path(run_dir, REPORT).read_text())
    result = FoldResult(
        score=score,
        classes=list(report["classes"]),
        confusion=report["confusion_matrix"],
        run_dir=run_dir,
        **_counts(fold),
    )
    storage.write_bytes_atomic(str(done), json.dumps(asdict(result), indent=2).encode())
    return result


def run_cv(
    *,
    cfg: PipelineConfig,
    manifest: pd.DataFrame,
    work_dir: str,
    augmented_store_url: str | None = None,
    runner: FoldRunner | None = None,
    on_fold: Callable[[FoldResult], Any] | None = None,
) -> CvResult:
    """Cross-validate ``cfg`` on ``manifest`` with the folds of ``cfg.cv``.

    Parameters
    ----------
    cfg : PipelineConfig
        ``cv`` picks the folds, ``train`` what is trained; the clean feature store of
        ``cfg`` must hold every usable clip.
    manifest : DataFrame
        The ingested manifest (its own ``split`` column is ignored).
    work_dir : str
        Local folder; each fold runs in a sub-folder named by :func:`cv_digest`.
    augmented_store_url : str, optional
        Augmented variants of (at least) every clip that is ``train`` in some fold.
    runner : FoldRunner, optional
        Trains and scores one fold (default :func:`~melflow.sweep.run.train_test_fold`).
    on_fold : callable, optional
        Called with each :class:`FoldResult` as it is finished (or read back).

    Returns
    -------
    CvResult
    """
    results = []
    for fold in make_folds(manifest, cfg.cv):
        result = run_fold(
            cfg, fold, work_dir=work_dir, augmented_store_url=augmented_store_url, runner=runner
        )
        if on_fold is not None:
            on_fold(result)
        results.append(result)
    classes = results[0].classes
    for result in results[1:]:
        if result.classes != classes:
            raise MelflowError(
                f"fold {result.score.fold} trained on classes {result.classes}, fold "
                f"{results[0].score.fold} on {classes}: every class needs train clips "
                "outside each fold"
            )
    return CvResult(classes=classes, folds=results)
