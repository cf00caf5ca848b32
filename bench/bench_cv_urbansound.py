"""UrbanSound8K folds 1-2: melflow's 2-fold CV against the MFCC-statistics random forest.

Both are trained on fold 1 and tested on fold 2, then the reverse, in the same run:

- melflow: ``melflow cv -p urbansound``, cold (ingest, extract, two trainings), timed;
- the baseline of Salamon et al. (2014): 25 MFCCs (40 mel bands) and their deltas, each
  summarised over the clip's own frames by 7 statistics (min, max, median, mean, variance,
  skewness, kurtosis) -> 350 features -> a 500-tree random forest (scikit-learn).

Skipped (``ImportError``) when the dataset is not beside the repo.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import scipy.stats
from sklearn.ensemble import RandomForestClassifier

from melflow.audio.io import read_audio, resample, to_mono
from melflow.config import load_config
from melflow.flows.cv import cv_flow

ROOT = Path(__file__).resolve().parent.parent
US8K = ROOT.parent / "shared" / "datasets" / "us8k-folds12"
SR = 22050
N_MFCC = 25
N_MELS = 40
TREES = 500


def mfcc_statistics(y: np.ndarray, *, sr: int) -> np.ndarray:
    """The baseline's 7 statistics of 25 MFCCs and their deltas: ``(350,)`` float64."""
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=N_MFCC, n_mels=N_MELS)
    frames = np.concatenate([mfcc, librosa.feature.delta(mfcc, mode="nearest")])
    stats = [
        frames.min(axis=1),
        frames.max(axis=1),
        np.median(frames, axis=1),
        frames.mean(axis=1),
        frames.var(axis=1),
        scipy.stats.skew(frames, axis=1),
        scipy.stats.kurtosis(frames, axis=1),
    ]
    return np.nan_to_num(np.concatenate(stats).astype(np.float64))


def baseline_rf(metadata: pd.DataFrame, *, root: Path) -> dict[str, float]:
    """Accuracy per test fold of the MFCC-statistics random forest, plus its seconds."""
    start = time.perf_counter()
    features = []
    for path in metadata["path"]:
        y, sr = read_audio(str(root / path))
        features.append(mfcc_statistics(resample(to_mono(y), orig_sr=sr, target_sr=SR), sr=SR))
    x = np.stack(features)
    labels = metadata["label"].to_numpy()
    folds = metadata["fold"].to_numpy()
    out: dict[str, float] = {}
    for test in sorted(set(folds)):
        forest = RandomForestClassifier(n_estimators=TREES, n_jobs=2, random_state=0)
        forest.fit(x[folds != test], labels[folds != test])
        out[f"baseline_rf_accuracy_fold{test}"] = float(
            (forest.predict(x[folds == test]) == labels[folds == test]).mean()
        )
    out["baseline_rf_wall_s"] = time.perf_counter() - start
    return out


def bench_cv_urbansound() -> dict[str, float]:
    """Cold ``melflow cv -p urbansound`` and the baseline on the same folds."""
    if not (US8K / "metadata.csv").exists():
        raise ImportError(f"UrbanSound8K folds 1-2 not found at {US8K}")
    data_dir = ROOT / "data" / "bench" / "urbansound"
    shutil.rmtree(data_dir, ignore_errors=True)
    cfg = load_config("urbansound", overrides=[f"paths.data_dir={data_dir}", f"corpus.root={US8K}"])
    start = time.perf_counter()
    result = cv_flow(cfg).result
    wall = time.perf_counter() - start
    baseline = baseline_rf(pd.read_csv(US8K / "metadata.csv"), root=US8K)
    pooled = result.summary()
    rf = [v for k, v in baseline.items() if k.startswith("baseline_rf_accuracy_fold")]
    rf_mean = statistics.fmean(rf)
    return {
        "folds": len(result.folds),
        "accuracy_mean": pooled["accuracy_mean"],
        "macro_f1_mean": pooled["macro_f1_mean"],
        **{f"accuracy_fold{f.score.fold}": f.score.accuracy for f in result.folds},
        "baseline_rf_accuracy_mean": rf_mean,
        "margin_over_baseline": pooled["accuracy_mean"] - rf_mean,
        "wall_s": wall,
        **baseline,
    }
