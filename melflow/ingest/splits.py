"""Train/val/test assignment: grouped, seeded, and stable when the corpus grows.

Design
------
Each group (speaker, source recording; a clip is its own group when none is known) gets
a fixed point ``u`` in [0, 1) from SHA-256 of ``(seed, group)``. With ``split_source:
random`` a group goes to ``test`` if ``u < test_fraction``, to ``val`` if
``u < test_fraction + val_fraction``, else to ``train``. The split of a group is
therefore a function of the group alone: no group is ever in two splits, the same seed
gives the same split on any machine, and **adding clips never moves existing ones**. Each
label's groups are an independent sample of the same thresholds, so every class is split
in the configured proportions in expectation (stratified by construction, not by
counting; exact quotas would have to renumber the groups of a class each time one is
added).

Small classes can miss a split by chance (12 singleton groups miss a 10 % val split with
probability 0.9**12 = 28 %). So every class that has no usable clip in ``test`` (or
``val``) *borrows* its train group with the lowest ``u`` (the one nearest the thresholds),
provided that leaves every class of that group a train clip. Borrowing is the one rule that
looks at other groups, hence the one exception to stability: when a class grows, its
borrowed group may go back to ``train`` (the class got a test/val group of its own, or a
new group with a lower ``u`` is borrowed instead). When groups do not span classes and new
clips come in new groups, that is the only possible move: no clip ever moves *into* test
or val, so a model's test set never gains clips it trained on.

With ``split_source: column`` or ``fold`` the given ``test`` split is kept as is; when the
result has no ``val`` rows and ``val_fraction > 0``, :func:`stratified_val` carves a
stratified, grouped ``val`` split out of the train groups: every class gets
``round(val_fraction * n_groups)`` of its groups (at least one when it has two or more,
never its last one), lowest ``u`` first. Early stopping and the choice of the best epoch
then see every class in its proportion, not a class with one clip by chance.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from melflow.config import CorpusConfig
from melflow.errors import ConfigError
from melflow.manifest import OK

SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


def group_unit(seed: int, group: str) -> float:
    """A group's fixed point in [0, 1): the first 64 bits of SHA-256 of ``(seed, group)``."""
    digest = hashlib.sha256(f"{seed}\x1f{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _units(groups: pd.Series, seed: int) -> np.ndarray:
    unique = {g: group_unit(seed, g) for g in groups.unique()}
    return groups.map(unique).to_numpy(dtype=np.float64)


def _column_splits(values: pd.Series, cfg: CorpusConfig) -> np.ndarray:
    split = values.str.lower().map(SPLIT_ALIASES)
    bad = sorted(set(values[split.isna()]))
    if bad:
        raise ConfigError(
            f"corpus.split_column {cfg.split_column!r} has values {bad[:5]}; "
            f"use train, val or test (or one of {sorted(SPLIT_ALIASES)})"
        )
    return split.to_numpy(dtype=object)


def _fold_splits(folds: pd.Series, cfg: CorpusConfig) -> np.ndarray:
    if (folds < 0).any():
        raise ConfigError(
            f"corpus.fold_column {cfg.fold_column!r} has {int((folds < 0).sum())} rows "
            "without an integer fold"
        )
    split = np.full(len(folds), "train", dtype=object)
    split[folds.isin(cfg.val_folds).to_numpy()] = "val"
    split[folds.isin(cfg.test_folds).to_numpy()] = "test"
    return split


def assign_splits(df: pd.DataFrame, cfg: CorpusConfig) -> pd.Series:
    """The split of every row of a candidate table, as described in the module docstring.

    Parameters
    ----------
    df : pd.DataFrame
        Rows with ``group``, ``label``, ``status``, ``split`` (the manifest's column, when
        ``split_source`` is ``column``) and ``fold``.
    cfg : CorpusConfig
        ``split_source``, fractions, folds and ``seed``.

    Returns
    -------
    pd.Series
        ``train``, ``val`` or ``test`` per row, aligned with ``df``.
    """
    u = _units(df["group"], cfg.seed)
    if cfg.split_source == "random":
        split = np.where(
            u < cfg.test_fraction,
            "test",
            np.where(u < cfg.test_fraction + cfg.val_fraction, "val", "train"),
        ).astype(object)
        targets = [s for s, f in (("test", cfg.test_fraction), ("val", cfg.val_fraction)) if f > 0]
    else:
        if cfg.split_source == "column":
            split = _column_splits(df["split"], cfg)
        else:
            split = _fold_splits(df["fold"], cfg)
        targets = []
        if cfg.val_fraction > 0 and not (split == "val").any():
            split = stratified_val(df, split, fraction=cfg.val_fraction, seed=cfg.seed)
    for target in targets:
        _borrow(df, split, u, target)
    return pd.Series(split, index=df.index, name="split")


def stratified_val(
    df: pd.DataFrame, split: np.ndarray, *, fraction: float, seed: int
) -> np.ndarray:
    """Move a stratified share of the train groups to ``val``; a new split array.

    Every class with ``n`` usable train groups gets ``round(fraction * n)`` of them in
    ``val``, at least 1 when ``n >= 2`` and at most ``n - 1``. Groups are taken in order
    of their fixed point ``u`` (so the choice is seeded and mostly stable as the corpus
    grows); a group spanning classes counts for each of them and is only taken while
    every class of it keeps a train group elsewhere.

    Parameters
    ----------
    df : pd.DataFrame
        Rows with ``group``, ``label`` and ``status``, aligned with ``split``.
    split : np.ndarray
        ``train``/``val``/``test`` per row; only ``train`` rows move.
    fraction : float
        Share of each class's train groups to move, in [0, 1).
    seed : int
        Seeds the groups' fixed points (:func:`group_unit`).
    """
    split = split.copy()
    ok = (df["status"] == OK).to_numpy() & (split == "train")
    labels = df["label"].astype(str).to_numpy()
    groups = df["group"].astype(str).to_numpy()
    pairs = pd.DataFrame({"group": groups[ok], "label": labels[ok]}).drop_duplicates()
    per_class = pairs.groupby("label")["group"].nunique()
    quota = {
        label: min(n - 1, max(1, round(fraction * n))) if n >= 2 else 0
        for label, n in per_class.items()
    }
    classes_of = pairs.groupby("group")["label"].agg(set).to_dict()
    train_groups = per_class.to_dict()  # usable train groups left per class
    taken = dict.fromkeys(quota, 0)
    for group in sorted(classes_of, key=lambda g: (group_unit(seed, g), g)):
        classes = classes_of[group]
        wanted = any(taken[c] < quota[c] for c in classes)
        if wanted and all(train_groups[c] > 1 for c in classes):
            split[(groups == group) & (split == "train")] = "val"
            for c in classes:
                taken[c] += 1
                train_groups[c] -= 1
    return split


def _borrow(df: pd.DataFrame, split: np.ndarray, u: np.ndarray, target: str) -> None:
    """Give each usable class without a ``target`` clip its lowest-``u`` movable train group."""
    ok = (df["status"] == OK).to_numpy()
    labels = df["label"].to_numpy()
    groups = df["group"].to_numpy()
    for label in sorted(set(labels[ok])):
        of_label = ok & (labels == label)
        if (split[of_label] == target).any():
            continue
        in_train = of_label & (split == "train")
        candidates = sorted(set(zip(u[in_train], groups[in_train], strict=True)))
        for _, group in candidates:
            if _can_leave_train(group, ok=ok, labels=labels, groups=groups, split=split):
                split[(groups == group) & (split == "train")] = target
                break


def _can_leave_train(
    group: str, *, ok: np.ndarray, labels: np.ndarray, groups: np.ndarray, split: np.ndarray
) -> bool:
    """True when every class of ``group`` keeps a usable train clip from another group."""
    train = ok & (split == "train")
    mine = train & (groups == group)
    others = train & (groups != group)
    return all((others & (labels == label)).any() for label in set(labels[mine]))
