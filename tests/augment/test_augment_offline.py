"""Offline augmentation into Zarr: train-only, seeded, cached, incremental, resumable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import manifest_for, small_config, tone
from stores import assert_same_store, store_arrays

from melflow.audio.io import load_clip
from melflow.augment.offline import (
    AUGMENT_COLUMNS,
    augment_features,
    augment_items,
    augmentable_rows,
    augmented_store_url,
)
from melflow.augment.ops import augment_waveform
from melflow.config import PipelineConfig
from melflow.demo_corpus import generate_demo_corpus
from melflow.errors import ConfigError
from melflow.features.spectral import compute_features
from melflow.features.store import KEY, RowStore
from melflow.manifest import normalize


def split_manifest(root: Path) -> pd.DataFrame:
    """The small corpus with clips ``6j`` in test, ``6j + 1`` in val, groups of 3 clips.

    Groups are ``g<i // 3>``, so clip ``6j + 2`` is a train clip sharing its group with
    held-out clips and must not be augmented, while group ``6j + 3 .. 6j + 5`` is all train.
    """
    m = manifest_for(root)
    i = np.arange(len(m))
    m["split"] = np.select([i % 6 == 0, i % 6 == 1], ["test", "val"], "train")
    m["group"] = [f"g{k // 3}" for k in i]
    return normalize(m)


def test_only_train_clips_outside_held_out_groups_are_augmented(
    small_cfg: PipelineConfig, small_corpus: Path, dask_client_inproc: object
) -> None:
    cfg = small_config(Path(small_cfg.paths.data_dir).parent, "augment.variants_per_clip=2")
    manifest = split_manifest(small_corpus)
    held_out = manifest[manifest["split"] != "train"]
    eligible = manifest[
        (manifest["split"] == "train") & ~manifest["group"].isin(set(held_out["group"]))
    ]
    assert 0 < len(eligible) < (manifest["split"] == "train").sum()  # the groups do exclude clips

    progress: list[tuple[int, int]] = []
    result = augment_features(
        manifest=manifest,
        cfg=cfg,
        client=dask_client_inproc,
        on_progress=lambda d, t: progress.append((d, t)),
    )
    assert result.rows == 2 * len(eligible) and not result.cached
    assert progress[-1] == (result.rows, result.rows)
    assert result.store_url == augmented_store_url(cfg)
    assert result.store_url.startswith(str(Path(cfg.paths.data_dir, "augmented")))

    root = RowStore(result.store_url).group()
    written = root["key"][:] != ""
    columns = {c: root[c][:][written] for c in AUGMENT_COLUMNS}
    assert set(columns["source_clip_id"]) == set(eligible["clip_id"])
    assert set(columns["split"]) == {"train"}
    assert not set(columns["group"]) & set(held_out["group"])
    assert not set(columns["source_clip_id"]) & set(held_out["clip_id"])
    assert sorted(columns["clip_id"]) == sorted(
        f"{c}~{v}" for c in eligible["clip_id"] for v in (0, 1)
    )
    for ops, params in zip(columns["ops"], columns["params"], strict=True):
        assert ops and list(json.loads(params)) == ops.split(",")
    # Same row shape as the clean store: 0.5 s at 16 kHz, hop 256 -> 32 frames of 32 mels.
    assert root["logmel"].shape[1:] == (32, 32)


def test_rows_are_the_recorded_ops_applied_with_the_recorded_seed(
    small_cfg: PipelineConfig, small_corpus: Path, dask_client_inproc: object
) -> None:
    manifest = manifest_for(small_corpus)
    result = augment_features(manifest=manifest, cfg=small_cfg, client=dask_client_inproc)
    store = RowStore(result.store_url)
    root = store.group()
    audio = small_cfg.audio
    paths = dict(zip(manifest["clip_id"], manifest["path"], strict=True))
    columns = {c: root[c][:] for c in ("source_clip_id", "seed", "params")}
    for row in (0, 17, result.rows - 1):
        y = load_clip(
            paths[columns["source_clip_id"][row]], sr=audio.sr, duration_s=audio.duration_s
        )
        rng = np.random.default_rng(int(columns["seed"][row]))
        variant, applied = augment_waveform(y, sr=audio.sr, cfg=small_cfg.augment, rng=rng)
        expected = compute_features(variant[None], sr=audio.sr, cfg=small_cfg.features)["logmel"][0]
        np.testing.assert_allclose(root["logmel"][row], expected, atol=1e-4)
        assert json.loads(columns["params"][row]) == applied
        clean = compute_features(y[None], sr=audio.sr, cfg=small_cfg.features)["logmel"][0]
        assert not np.allclose(root["logmel"][row], clean, atol=1e-2)  # it is a real variant


def test_same_seed_gives_identical_variants_and_another_seed_differs(
    tmp_path: Path, dask_client_inproc: object
) -> None:
    arrays = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        cfg = small_config(tmp_path / name, f"augment.seed={seed}")
        generate_demo_corpus(root=cfg.corpus.root, per_class=3, sr=16000)
        result = augment_features(
            manifest=manifest_for(Path(cfg.corpus.root)), cfg=cfg, client=dask_client_inproc
        )
        arrays[name] = store_arrays(RowStore(result.store_url))
    assert arrays["a"].keys() == arrays["b"].keys() == set(["logmel", KEY, *AUGMENT_COLUMNS])
    for name in arrays["a"]:
        np.testing.assert_array_equal(arrays["a"][name], arrays["b"][name], err_msg=name)
    assert not np.array_equal(arrays["a"]["logmel"], arrays["c"]["logmel"])
    assert not np.array_equal(arrays["a"]["seed"], arrays["c"]["seed"])


def test_rerun_is_cached_and_new_train_clips_are_appended_alone(
    small_cfg: PipelineConfig, small_corpus: Path, dask_client_inproc: object
) -> None:
    manifest = manifest_for(small_corpus)
    first = augment_features(manifest=manifest, cfg=small_cfg, client=dask_client_inproc)
    again = augment_features(manifest=manifest, cfg=small_cfg, client=dask_client_inproc)
    assert again.cached and again.batches_computed == 0
    assert (again.rows, again.batches_total, again.store_url) == (
        first.rows,
        first.batches_total,
        first.store_url,
    )

    # A lost completion marker still costs nothing: every batch has its own marker.
    for marker in Path(first.store_url, "_melflow", "complete").iterdir():
        marker.unlink()
    redone = augment_features(manifest=manifest, cfg=small_cfg, client=dask_client_inproc)
    assert (redone.cached, redone.batches_computed) == (False, 0)

    before = store_arrays(RowStore(first.store_url))
    generate_demo_corpus(root=small_corpus, per_class=13, sr=16000)  # +6 train clips
    grown = augment_features(
        manifest=manifest_for(small_corpus), cfg=small_cfg, client=dask_client_inproc
    )
    assert grown.rows == first.rows + 6 and grown.batches_computed == 1
    after = store_arrays(RowStore(first.store_url))
    rows = before["logmel"].shape[0]
    for name in before:
        np.testing.assert_array_equal(after[name][:rows], before[name], err_msg=name)
    assert {c.split("~")[0] for c in after["clip_id"][rows:] if c} == {
        c for c in manifest_for(small_corpus)["clip_id"] if c.endswith("_00012.wav")
    }


def test_disabled_augmentation_does_no_work(
    tmp_path: Path, small_corpus: Path, dask_client_inproc: object
) -> None:
    cfg = small_config(tmp_path, "augment.enabled=false")
    result = augment_features(
        manifest=manifest_for(small_corpus), cfg=cfg, client=dask_client_inproc
    )
    assert result.skipped and result.rows == 0 and result.batches_computed == 0
    assert not Path(cfg.paths.data_dir, "augmented").exists()


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("augment.noise.high=150", "augment.noise.high"),
        ("augment.noise.low=-30", "augment.noise.low"),
        ("augment.time_stretch.low=0", "augment.time_stretch.low"),
        ("augment.time_stretch.high=-1", "augment.time_stretch.high"),
        ("augment.pitch_shift.low=-30", "augment.pitch_shift.low"),
        ("augment.gain.p=1.5", "augment.gain.p"),
        ("augment.variants_per_clip=0", "augment.variants_per_clip"),
        ("augment.noise.kind=folder", "augment.noise.folder"),
        ("train.spec_augment.freq_mask=-1", "train.spec_augment.freq_mask"),
        ("train.mixup.alpha=0", "train.mixup.alpha"),
    ],
)
def test_invalid_config_names_the_field(tmp_path: Path, override: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        small_config(tmp_path, override)


def test_inverted_range_and_no_active_op_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"augment\.noise: .*low=40.0 must not exceed high=30.0"):
        small_config(tmp_path, "augment.noise.low=40")
    no_ops = [
        f"augment.{op}.p=0" for op in ("time_stretch", "pitch_shift", "noise", "gain", "shift")
    ]
    with pytest.raises(ConfigError, match="every op has p=0"):
        small_config(tmp_path, *no_ops)
    small_config(tmp_path, *no_ops, "augment.enabled=false")


def _write_noise(folder: Path, name: str, freq: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / name, tone(freq, sr=8000, duration_s=0.3), 8000)


def test_background_folder_noise_is_used_and_keys_the_store(
    tmp_path: Path, small_corpus: Path, dask_client_inproc: object
) -> None:
    folder = tmp_path / "noise"
    only_noise = [
        "augment.noise.p=1",
        "augment.time_stretch.p=0",
        "augment.pitch_shift.p=0",
        "augment.gain.p=0",
        "augment.shift.p=0",
    ]
    cfg = small_config(
        tmp_path, "augment.noise.kind=folder", f"augment.noise.folder={folder}", *only_noise
    )
    manifest = manifest_for(small_corpus)
    with pytest.raises(ConfigError, match=r"augment\.noise\.folder.*not a folder"):
        augment_features(manifest=manifest, cfg=cfg, client=dask_client_inproc)
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"augment\.noise\.folder: no audio files"):
        augment_features(manifest=manifest, cfg=cfg, client=dask_client_inproc)
    assert not Path(cfg.paths.data_dir, "augmented").exists()

    _write_noise(folder, "hum.wav", 120.0)
    _write_noise(folder / "sub", "whine.wav", 3000.0)
    result = augment_features(manifest=manifest, cfg=cfg, client=dask_client_inproc)
    store = RowStore(result.store_url)
    assert [Path(p).name for p in store.attrs["layout"]["attrs"]["background_files"]] == [
        "hum.wav",
        "whine.wav",
    ]
    params = [json.loads(p) for p in store.group()["params"][: result.rows]]
    assert {p["noise"]["kind"] for p in params} == {"folder"}
    assert {p["noise"]["clip"] for p in params} == {0, 1}

    _write_noise(folder, "hum.wav", 150.0)  # new noise content: a new store
    assert augmented_store_url(cfg) != result.store_url


def test_items_follow_the_manifest_and_seed_by_clip_not_batch(
    small_cfg: PipelineConfig, small_corpus: Path
) -> None:
    manifest = manifest_for(small_corpus)
    items, n_items = augment_items(manifest=manifest, cfg=small_cfg)
    subset, _ = augment_items(manifest=manifest.iloc[::5], cfg=small_cfg)
    assert n_items == len(items) == len(manifest) * small_cfg.augment.variants_per_clip
    by_key = {item[KEY]: item["seed"] for item in items}
    assert all(by_key[item[KEY]] == item["seed"] for item in subset)
    assert len(set(by_key.values())) == len(items)
    assert len(augmentable_rows(manifest)) == len(manifest)


KILLED_RUN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from conftest import manifest_for, small_config
    from distributed import Client, LocalCluster
    from melflow.augment.offline import augment_features

    if __name__ == "__main__":
        cfg = small_config(Path({tmp!r}), *{overrides!r})
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            augment_features(manifest=manifest_for(Path(cfg.corpus.root)), cfg=cfg, client=client)
    """
)


@pytest.mark.integration
def test_sigkill_mid_augmentation_resumes_to_an_identical_store(
    tmp_path: Path, dask_client_inproc: object
) -> None:
    overrides = ["features.batch_size=8", "augment.variants_per_clip=2"]
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    for base in (killed_dir, clean_dir):
        generate_demo_corpus(root=small_config(base).corpus.root, per_class=12, sr=16000)
    killed_cfg = small_config(killed_dir, *overrides)
    done_dir = Path(augmented_store_url(killed_cfg), "_melflow", "done")
    script = tmp_path / "run.py"
    script.write_text(
        KILLED_RUN.format(
            tests=str(Path(__file__).parents[1]), tmp=str(killed_dir), overrides=overrides
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (done_dir.exists() and any(p.name.isdigit() for p in done_dir.iterdir())):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        assert time.monotonic() < deadline, "no batch finished within 120 s"
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL

    store = RowStore(augmented_store_url(killed_cfg))
    planned, pending = len(store.planned_batches()), len(store.pending_batches())
    assert planned == 18 and 0 < pending < planned
    manifest = manifest_for(Path(killed_cfg.corpus.root))
    resumed = augment_features(manifest=manifest, cfg=killed_cfg, client=dask_client_inproc)
    assert (resumed.batches_computed, resumed.batches_total, resumed.rows) == (pending, 18, 144)

    clean_cfg = small_config(clean_dir, *overrides)
    clean = augment_features(
        manifest=manifest_for(Path(clean_cfg.corpus.root)), cfg=clean_cfg, client=dask_client_inproc
    )
    assert_same_store(RowStore(resumed.store_url), RowStore(clean.store_url))
