"""Ingest: label sources, splits, determinism, incremental reruns and the outputs' layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import small_config, tone

import melflow.ingest.probe as probe_module
from melflow.config import CorpusConfig, PipelineConfig
from melflow.demo_corpus import CLASSES, generate_demo_corpus
from melflow.errors import ConfigError
from melflow.ingest import ingest_corpus, latest_manifest, load_manifest
from melflow.ingest.splits import group_unit
from melflow.manifest import COLUMNS, manifest_digest


def write_tone(path: Path, freq_hz: float, *, sr: int = 8000, duration_s: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(freq_hz, sr=sr, duration_s=duration_s), sr, subtype="PCM_16")


def assert_groups_disjoint(df: pd.DataFrame) -> None:
    splits_per_group = df.groupby("group")["split"].nunique()
    assert (splits_per_group == 1).all(), splits_per_group[splits_per_group > 1]


@pytest.fixture
def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file ingest reads (to hash and decode), in order."""
    reads: list[str] = []
    real = probe_module.file_bytes

    def counting(path: str, *, fs: object = None) -> bytes:
        reads.append(path)
        return real(path, fs=fs)

    monkeypatch.setattr(probe_module, "file_bytes", counting)
    return reads


def test_folder_corpus_gives_a_grouped_deterministic_manifest(
    small_cfg: PipelineConfig, small_corpus: Path, tmp_path: Path
) -> None:
    progress: list[tuple[int, int]] = []
    result = ingest_corpus(cfg=small_cfg, on_progress=lambda d, t: progress.append((d, t)))
    df = load_manifest(result)

    assert list(df.columns) == list(COLUMNS)
    assert (result.n_clips, result.n_ok, result.n_quarantined, result.reasons) == (72, 72, 0, {})
    assert (df["status"] == "ok").all()
    assert sorted(df["label"].unique()) == sorted(CLASSES)
    assert df["clip_id"].iloc[0] == "alarm/alarm_00000.wav"
    assert df["path"].iloc[0] == str(small_corpus.resolve() / "alarm" / "alarm_00000.wav")
    assert (df["sr"] == 16000).all() and (df["channels"] == 1).all()
    assert df["duration_s"].between(0.6, 1.4).all()
    assert df["sha256"].str.fullmatch("[0-9a-f]{64}").all()
    assert (df["fold"] == -1).all()
    # No group information: each clip is its own group.
    assert (df["group"] == df["clip_id"]).all()
    assert_groups_disjoint(df)

    counts = df["split"].value_counts().to_dict()
    assert counts == {"train": 43, "test": 18, "val": 11}  # seed 0; targets 50.4/14.4/7.2
    assert abs(counts["test"] / 72 - 0.2) < 0.06 and abs(counts["val"] / 72 - 0.1) < 0.06
    per_label = df.groupby("label")["split"].nunique()
    assert (per_label == 3).all(), "every class in train, val and test"

    assert progress[-1] == (72, 72)
    assert result.manifest_digest == manifest_digest(df)
    assert result.manifest_path == str(
        tmp_path / "data" / "manifests" / f"{result.manifest_digest}.parquet"
    )
    report = pd.read_csv(result.report_path)
    assert list(report.columns) == ["clip_id", "path", "status", "detail"] and report.empty

    again = ingest_corpus(cfg=small_cfg)
    fresh = ingest_corpus(cfg=small_config(tmp_path, f"paths.data_dir={tmp_path / 'other'}"))
    assert again.manifest_digest == fresh.manifest_digest == result.manifest_digest
    pd.testing.assert_frame_equal(
        load_manifest(fresh).drop(columns="path"), df.drop(columns="path")
    )


def test_latest_pointer_round_trips(small_cfg: PipelineConfig, small_corpus: Path) -> None:
    assert latest_manifest(cfg=small_cfg) is None
    result = ingest_corpus(cfg=small_cfg)
    pointer = Path(small_cfg.paths.data_dir, "manifests", "latest-small.json")
    assert json.loads(pointer.read_text())["manifest_digest"] == result.manifest_digest
    assert latest_manifest(cfg=small_cfg) == result
    Path(result.manifest_path).unlink()
    assert latest_manifest(cfg=small_cfg) is None


def test_empty_root_gets_the_demo_corpus(small_cfg: PipelineConfig) -> None:
    assert not Path(small_cfg.corpus.root).exists()
    result = ingest_corpus(cfg=small_cfg)
    assert (result.n_clips, result.n_ok) == (72, 72)


def test_unchanged_files_are_not_read_again(
    small_cfg: PipelineConfig, small_corpus: Path, count_reads: list[str]
) -> None:
    first = ingest_corpus(cfg=small_cfg)
    assert len(count_reads) == 72 and first.n_probed == 72 and not first.cached

    count_reads.clear()
    second = ingest_corpus(cfg=small_cfg)
    assert count_reads == [] and second.cached
    assert second.manifest_digest == first.manifest_digest

    changed = small_corpus / "siren" / "siren_00003.wav"
    write_tone(changed, 500.0, sr=16000, duration_s=0.8)
    added = small_corpus / "siren" / "siren_extra.wav"
    write_tone(added, 700.0, sr=16000, duration_s=0.8)
    count_reads.clear()
    third = ingest_corpus(cfg=small_cfg)
    assert sorted(count_reads) == sorted([str(changed.resolve()), str(added.resolve())])
    assert third.n_clips == 73 and third.n_probed == 2

    # The cache holds facts, not verdicts: new limits need no new reads.
    count_reads.clear()
    stricter = small_cfg.model_copy(
        update={"audio": small_cfg.audio.model_copy(update={"min_duration_s": 1.0})}
    )
    fourth = ingest_corpus(cfg=stricter)
    assert count_reads == []
    assert fourth.reasons["too_short"] == int((load_manifest(third)["duration_s"] < 1.0).sum())


def hash_split(clip_ids: pd.Index, corpus: CorpusConfig) -> pd.Series:
    """Each clip's split from the hash thresholds alone (each clip its own group)."""
    u = np.array([group_unit(corpus.seed, g) for g in clip_ids])
    bands = np.where(u < corpus.test_fraction + corpus.val_fraction, "val", "train")
    return pd.Series(np.where(u < corpus.test_fraction, "test", bands), index=clip_ids)


def test_adding_clips_moves_no_hash_assigned_clip(
    small_cfg: PipelineConfig, small_corpus: Path
) -> None:
    before = load_manifest(ingest_corpus(cfg=small_cfg)).set_index("clip_id")["split"]
    loans = before.index[before != hash_split(before.index, small_cfg.corpus)]
    # With 12 clips, alarm has no val clip by hash and borrows its train clip nearest the
    # val band.
    assert list(loans) == ["alarm/alarm_00005.wav"] and before[loans[0]] == "val"

    generate_demo_corpus(root=small_corpus, per_class=40, sr=16000)
    after = load_manifest(ingest_corpus(cfg=small_cfg)).set_index("clip_id")["split"]
    assert len(after) == 240
    # 40 clips per class cover every split by hash: no loans, so the old loan is back in
    # train, and every other old clip kept its split.
    assert (after == hash_split(after.index, small_cfg.corpus)).all()
    moved = before.index[after.loc[before.index] != before]
    assert list(moved) == list(loans) and after[loans[0]] == "train"
    counts = after.value_counts()
    assert abs(counts["test"] / 240 - 0.2) < 0.05 and abs(counts["val"] / 240 - 0.1) < 0.05


def speaker_corpus(root: Path, *, speakers: int, digits: int = 3, takes: int = 4) -> list[str]:
    """FSDD-style ``<digit>_<speaker>_<take>.wav`` files; returns their clip ids."""
    clip_ids = []
    for d in range(digits):
        for s in range(speakers):
            for t in range(takes):
                name = f"{d}_spk{chr(97 + s)}_{t}.wav"
                write_tone(root / "recordings" / name, 300.0 + 100 * d + 7 * s + t)
                clip_ids.append(f"recordings/{name}")
    return clip_ids


REGEX = "corpus.filename_regex=^(?P<label>\\d+)_(?P<group>[a-z]+)_\\d+$"


def test_regex_labels_and_groups_with_grouped_random_split(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    speaker_corpus(root, speakers=12)
    write_tone(root / "recordings" / "README.wav", 440.0)
    cfg = small_config(tmp_path, "corpus.label_source=regex", REGEX, "corpus.demo=null")
    result = ingest_corpus(cfg=cfg)
    df = load_manifest(result).set_index("clip_id")

    assert result.n_clips == 3 * 12 * 4 + 1 and result.reasons == {"unlabelled": 1}
    assert df.loc["recordings/README.wav", "status"] == "unlabelled"
    assert df.loc["recordings/2_spkc_1.wav", ["label", "group"]].tolist() == ["2", "spkc"]
    ok = df[df["status"] == "ok"]
    assert_groups_disjoint(ok)
    assert set(ok["group"]) == {f"spk{chr(97 + s)}" for s in range(12)}
    assert (ok.groupby("label")["split"].nunique() == 3).all()
    assert set(ok.groupby("split")["group"].nunique()) <= set(range(1, 10))


def write_metadata(root: Path, rows: list[dict[str, object]], name: str) -> None:
    table = pd.DataFrame(rows)
    if name.endswith(".parquet"):
        table.to_parquet(root / name, index=False)
    else:
        table.to_csv(root / name, index=False)


@pytest.mark.parametrize("name", ["metadata.csv", "meta.parquet"])
def test_manifest_source_with_column_split_carves_a_grouped_val(tmp_path: Path, name: str) -> None:
    root = tmp_path / "corpus"
    clip_ids = speaker_corpus(root, speakers=8, takes=3)
    rows: list[dict[str, object]] = [
        {
            "file": cid,
            "digit": int(cid.split("/")[1][0]),
            "speaker": cid.split("_")[1],
            "set": "test" if cid.endswith("_0.wav") else "train",
        }
        for cid in clip_ids
    ]
    write_metadata(root, rows, name)
    cfg = small_config(
        tmp_path,
        "corpus.label_source=manifest",
        f"corpus.manifest={name}",
        "corpus.path_column=file",
        "corpus.label_column=digit",
        "corpus.group_column=speaker",
        "corpus.split_source=column",
        "corpus.split_column=set",
        "corpus.val_fraction=0.2",
        "corpus.demo=null",
    )
    df = load_manifest(ingest_corpus(cfg=cfg))
    assert len(df) == 72 and (df["status"] == "ok").all()
    assert sorted(df["label"].unique()) == ["0", "1", "2"]
    given = pd.DataFrame(rows).set_index("file")["set"]
    test = df[df["split"] == "test"]
    assert sorted(test["clip_id"]) == sorted(given[given == "test"].index)
    val_groups = set(df.loc[df["split"] == "val", "group"])
    train_groups = set(df.loc[df["split"] == "train", "group"])
    assert val_groups and not val_groups & train_groups
    assert set(df.loc[df["split"] == "val", "label"]) == {"0", "1", "2"}


def test_fold_split_source(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    for i in range(12):
        write_tone(root / "audio" / f"c{i:02d}.wav", 200.0 + 50 * i)
    rows = [
        {"path": f"audio/c{i:02d}.wav", "label": "ab"[i % 2], "fold": i % 4 + 1} for i in range(12)
    ]
    write_metadata(root, rows, "meta.csv")
    cfg = small_config(
        tmp_path,
        "corpus.label_source=manifest",
        "corpus.manifest=meta.csv",
        "corpus.split_source=fold",
        "corpus.test_folds=[1]",
        "corpus.val_folds=[2]",
        "corpus.demo=null",
    )
    df = load_manifest(ingest_corpus(cfg=cfg))
    expected = {1: "test", 2: "val", 3: "train", 4: "train"}
    assert (df["split"] == df["fold"].map(expected)).all()
    assert sorted(df["fold"].unique()) == [1, 2, 3, 4]


def test_url_root_on_an_fsspec_filesystem(tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    local = tmp_path / "staging"
    generate_demo_corpus(root=local, per_class=3, sr=8000, classes=("alarm", "siren"))
    for path in sorted(local.rglob("*.wav")):
        fs.pipe_file(
            f"/melflow-test-corpus/{path.relative_to(local).as_posix()}", path.read_bytes()
        )
    cfg = small_config(
        tmp_path,
        "corpus.root=memory://melflow-test-corpus",
        "paths.data_dir=memory://melflow-test-data",
        "corpus.demo=null",
    )
    try:
        result = ingest_corpus(cfg=cfg)
        df = load_manifest(result)
        assert (result.n_clips, result.n_ok) == (6, 6)
        assert df["path"].iloc[0] == "memory:///melflow-test-corpus/alarm/alarm_00000.wav"
        assert df["clip_id"].iloc[0] == "alarm/alarm_00000.wav"
        assert result.manifest_path.startswith("memory://melflow-test-data/manifests/")
        again = ingest_corpus(cfg=cfg)
        assert again.cached and latest_manifest(cfg=cfg) == again
    finally:
        for folder in ("/melflow-test-corpus", "/melflow-test-data"):
            fs.rm(folder, recursive=True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ((), "does not exist"),
        (("corpus.label_source=manifest", "corpus.manifest=absent.csv"), "not found"),
        (
            ("corpus.label_source=manifest", "corpus.manifest=m.csv", "corpus.label_column=x"),
            "lacks",
        ),
        (
            ("corpus.label_source=manifest", "corpus.manifest=m.csv", "corpus.split_source=column"),
            "split_column 'split' has values",
        ),
    ],
)
def test_bad_corpus_configuration_is_a_config_error(
    tmp_path: Path, overrides: tuple[str, ...], message: str
) -> None:
    root = tmp_path / "corpus"
    if overrides:
        write_tone(root / "a.wav", 440.0)
        write_metadata(root, [{"path": "a.wav", "label": "x", "split": "holdout"}], "m.csv")
    cfg = small_config(tmp_path, "corpus.demo=null", *overrides)
    with pytest.raises(ConfigError, match=message):
        ingest_corpus(cfg=cfg)


def test_split_from_a_column_needs_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="split_source 'column'"):
        small_config(tmp_path, "corpus.split_source=column")
