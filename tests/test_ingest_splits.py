"""Split assignment: hashed groups, stability under additions, class coverage by borrowing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from melflow.config import CorpusConfig
from melflow.errors import ConfigError
from melflow.ingest.splits import assign_splits, group_unit, stratified_val

RANDOM = CorpusConfig(root="unused", test_fraction=0.2, val_fraction=0.1, seed=0)


def table(rows: list[tuple[str, str]], **columns: Sequence[object]) -> pd.DataFrame:
    """Rows of ``(label, group)``, all ``ok`` unless ``status`` is given."""
    df = pd.DataFrame(rows, columns=["label", "group"])
    df["status"] = columns.get("status", ["ok"] * len(df))
    df["split"] = columns.get("split", [""] * len(df))
    df["fold"] = columns.get("fold", [-1] * len(df))
    return df


def groups_in_band(label: str, low: float, high: float, n: int, seed: int = 0) -> list[str]:
    """The first ``n`` group names ``<label>-<i>`` whose unit falls in ``[low, high)``."""
    names = (f"{label}-{i}" for i in range(100_000))
    return [g for g in names if low <= group_unit(seed, g) < high][:n]


def test_group_unit_is_seeded_and_uniform() -> None:
    assert group_unit(0, "spk") == group_unit(0, "spk")
    assert group_unit(0, "spk") != group_unit(1, "spk")
    u = np.array([group_unit(7, f"g{i}") for i in range(20_000)])
    assert ((u >= 0) & (u < 1)).all()
    assert abs((u < 0.2).mean() - 0.2) < 0.01 and abs(u.mean() - 0.5) < 0.01


def test_large_classes_follow_the_hash_and_keep_their_split_when_grown() -> None:
    rows = [(label, f"{label}-{i}") for label in "abcde" for i in range(200)]
    small = table(rows[::2])
    grown = table(rows)
    before = pd.Series(assign_splits(small, RANDOM).to_numpy(), index=small["group"])
    after = pd.Series(assign_splits(grown, RANDOM).to_numpy(), index=grown["group"])
    assert after.loc[before.index].equals(before)
    u = np.array([group_unit(0, g) for g in after.index])
    expected = np.where(u < 0.2, "test", np.where(u < 0.3, "val", "train"))
    assert (after.to_numpy() == expected).all()
    shares = after.value_counts(normalize=True)
    assert abs(shares["test"] - 0.2) < 0.03 and abs(shares["val"] - 0.1) < 0.03


def test_a_class_missed_by_the_hash_borrows_its_lowest_train_groups() -> None:
    unlucky = groups_in_band("x", 0.3, 1.0, 5)
    lucky = groups_in_band("y", 0.0, 0.2, 2) + groups_in_band("y", 0.2, 0.3, 2)
    lucky += groups_in_band("y", 0.3, 1.0, 4)
    df = table([("x", g) for g in unlucky] + [("y", g) for g in lucky])
    split = pd.Series(assign_splits(df, RANDOM).to_numpy(), index=df["group"])
    by_unit = sorted(unlucky, key=lambda g: group_unit(0, g))
    assert split[by_unit[0]] == "test" and split[by_unit[1]] == "val"
    assert (split[by_unit[2:]] == "train").all()
    assert (
        split[lucky]
        == np.where(
            [group_unit(0, g) < 0.2 for g in lucky],
            "test",
            np.where([group_unit(0, g) < 0.3 for g in lucky], "val", "train"),
        )
    ).all()


@pytest.mark.parametrize(("n_groups", "expected"), [(1, ["train"]), (2, ["test", "train"])])
def test_borrowing_never_empties_train(n_groups: int, expected: list[str]) -> None:
    groups = groups_in_band("x", 0.3, 1.0, n_groups)
    df = table([("x", g) for g in groups])
    assert sorted(assign_splits(df, RANDOM)) == sorted(expected)


def test_a_group_spanning_classes_is_not_lent_if_another_class_needs_it_in_train() -> None:
    shared, spare = groups_in_band("s", 0.3, 1.0, 2)
    if group_unit(0, shared) > group_unit(0, spare):
        shared, spare = spare, shared
    # ``shared`` has the lowest unit but is class b's only train group: ``spare`` is lent.
    rows = [("a", shared), ("b", shared), ("a", spare)]
    rows += [("b", g) for g in groups_in_band("b", 0.0, 0.3, 2)]
    df = table(rows)
    df["split"] = assign_splits(df, RANDOM)
    assert set(df.loc[df["group"] == shared, "split"]) == {"train"}
    # ``spare`` goes to test; val for class a would need ``shared`` and stays empty.
    assert set(df.loc[df["group"] == spare, "split"]) == {"test"}
    assert "val" not in set(df.loc[df["label"] == "a", "split"])


def test_quarantined_rows_follow_their_group_but_do_not_count_for_coverage() -> None:
    groups = groups_in_band("x", 0.3, 1.0, 4)
    df = table(
        [("x", g) for g in groups] + [("x", groups[0])],
        status=["ok", "ok", "ok", "ok", "silent"],
    )
    split = assign_splits(df, RANDOM)
    assert split.iloc[4] == split.iloc[0]
    assert sorted(split.iloc[:4]) == ["test", "train", "train", "val"]


def test_column_split_keeps_test_and_carves_val_from_train_groups() -> None:
    cfg = RANDOM.model_copy(update={"split_source": "column", "val_fraction": 0.25})
    groups = [f"spk{i}" for i in range(40)]
    rows = [(str(i % 3), g) for g in groups for i in range(3)]
    given = ["Test" if i % 3 == 0 else "training" for i in range(len(rows))]
    df = table(rows, split=given)
    split = assign_splits(df, cfg)
    assert ((split == "test") == (pd.Series(given) == "Test")).all()
    val_groups = set(df.loc[split == "val", "group"])
    assert val_groups == set(sorted(groups, key=lambda g: group_unit(0, g))[:10])  # 25 % of 40
    assert not val_groups & set(df.loc[split == "train", "group"])


def test_column_split_with_val_rows_is_kept_as_given() -> None:
    cfg = RANDOM.model_copy(update={"split_source": "column"})
    df = table([("a", "g1"), ("a", "g2"), ("a", "g3")], split=["train", "validation", "dev"])
    assert list(assign_splits(df, cfg)) == ["train", "val", "val"]


def test_bad_split_values_and_missing_folds_are_config_errors() -> None:
    column = RANDOM.model_copy(update={"split_source": "column"})
    with pytest.raises(ConfigError, match="holdout"):
        assign_splits(table([("a", "g")], split=["holdout"]), column)
    fold = RANDOM.model_copy(update={"split_source": "fold"})
    with pytest.raises(ConfigError, match="without an integer fold"):
        assign_splits(table([("a", "g"), ("a", "h")], fold=[1, -1]), fold)


def test_stratified_val_gives_every_class_with_two_groups_its_share() -> None:
    # 3 classes of 30, 5 and 2 groups (one clip each) and a class with a single group
    rows = [("big", f"b{i}") for i in range(30)] + [("mid", f"m{i}") for i in range(5)]
    rows += [("two", "t0"), ("two", "t1"), ("one", "o0")]
    df = table(rows)
    split = stratified_val(df, np.full(len(df), "train", dtype=object), fraction=0.1, seed=3)
    val = df.loc[split == "val"]
    assert val["label"].value_counts().to_dict() == {"big": 3, "mid": 1, "two": 1}
    # the lowest-u groups of a class are the ones taken
    big = sorted((f"b{i}" for i in range(30)), key=lambda g: group_unit(3, g))
    assert set(val.loc[val["label"] == "big", "group"]) == set(big[:3])


def test_stratified_val_keeps_groups_whole_and_test_untouched() -> None:
    rows = [(lab, f"g{i}") for i in range(12) for lab in ("a", "a", "b")]
    df = table(rows)
    given = np.array(["test" if i < 6 else "train" for i in range(len(df))], dtype=object)
    split = stratified_val(df, given, fraction=0.25, seed=0)
    assert (split[:6] == "test").all()
    for _, rows_of_group in df.assign(split=split).groupby("group"):
        assert rows_of_group["split"].nunique() == 1
    val_groups = df.loc[split == "val", "group"].nunique()
    assert val_groups == round(0.25 * 10)
