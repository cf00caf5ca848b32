"""Extraction with Dask into Zarr: equal to a reference, cached, incremental, resumable."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from conftest import manifest_for, small_config
from stores import assert_same_store

from melflow.audio.io import load_clip
from melflow.config import PipelineConfig
from melflow.demo_corpus import generate_demo_corpus
from melflow.features.extract import (
    ITEM_COLUMNS,
    clip_key,
    extract_features,
    feature_store_url,
    open_feature_store,
    unplanned_items,
)
from melflow.features.spectral import compute_features
from melflow.features.store import KEY, RowStore
from melflow.manifest import manifest_batches, manifest_chunks, write_manifest
from melflow.parallel import dask_client


def test_local_cluster_matches_single_process_reference(
    small_cfg: PipelineConfig, small_corpus: Path
) -> None:
    manifest = manifest_for(small_corpus)
    with dask_client(small_cfg.dask.model_copy(update={"n_workers": 2})) as client:
        result = extract_features(manifest=manifest, cfg=small_cfg, client=client)
    assert (result.rows, result.batches_total, result.batches_computed) == (72, 5, 5)
    store = RowStore(result.store_url)
    rows = store.rows_for([clip_key(r.clip_id, r.sha256) for r in manifest.itertuples()])
    logmel = store.group()["logmel"]
    audio = small_cfg.audio
    for r, row in zip(manifest.itertuples(), rows["row"], strict=True):
        y = load_clip(r.path, sr=audio.sr, duration_s=audio.duration_s)
        expected = compute_features(y[None], sr=audio.sr, cfg=small_cfg.features)["logmel"][0]
        np.testing.assert_allclose(logmel[int(row)], expected, atol=1e-4)
    assert list(store.group()["label"][rows["row"].to_numpy()]) == list(manifest["label"])


def test_rerun_is_cached_and_new_clips_extract_alone(
    small_cfg: PipelineConfig, small_corpus: Path, dask_client_inproc: object
) -> None:
    manifest = manifest_for(small_corpus)
    first = extract_features(manifest=manifest, cfg=small_cfg, client=dask_client_inproc)
    again = extract_features(manifest=manifest, cfg=small_cfg, client=dask_client_inproc)
    assert again.cached and again.batches_computed == 0 and again.store_url == first.store_url

    store = RowStore(first.store_url)
    chunk_dir = Path(first.store_url, "data.zarr", "logmel", "c")
    old_chunks = {p: p.stat().st_mtime_ns for p in chunk_dir.rglob("*") if p.is_file()}
    generate_demo_corpus(root=small_corpus, per_class=13, sr=16000)  # +6 clips, ~8 %
    grown = manifest_for(small_corpus)
    third = extract_features(manifest=grown, cfg=small_cfg, client=dask_client_inproc)
    assert (third.rows, third.batches_computed, third.cached) == (78, 1, False)
    new_keys = set(store.index()[KEY]) - {
        clip_key(r.clip_id, r.sha256) for r in manifest.itertuples()
    }
    assert {k.split("#")[0] for k in new_keys} == {
        p for p in grown["clip_id"] if p.endswith("_00012.wav")
    }
    assert {p: p.stat().st_mtime_ns for p in old_chunks} == old_chunks


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from conftest import manifest_for, small_config
    from pathlib import Path
    from melflow.features.extract import extract_features
    from melflow.parallel import dask_client

    cfg = small_config(Path({tmp!r}))
    def die_after_first_batches(done, total):
        if done >= 2 * cfg.features.batch_size:
            os.killpg(os.getpgid(0), signal.SIGKILL)
    if __name__ == "__main__":
        with dask_client(cfg.dask) as client:
            extract_features(manifest=manifest_for(Path(cfg.corpus.root)), cfg=cfg, client=client,
                             on_progress=die_after_first_batches)
    """
)


def test_sigkill_mid_extraction_resumes_to_an_identical_store(
    tmp_path: Path, dask_client_inproc: object
) -> None:
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    for base in (killed_dir, clean_dir):
        cfg = small_config(base)
        generate_demo_corpus(root=cfg.corpus.root, per_class=20, sr=16000)
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(tests=str(Path(__file__).parents[1]), tmp=str(killed_dir)))
    proc = subprocess.run(
        [sys.executable, str(script)],
        start_new_session=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]

    killed_cfg = small_config(killed_dir)
    killed_store = RowStore(feature_store_url(killed_cfg))
    planned, pending = len(killed_store.planned_batches()), len(killed_store.pending_batches())
    assert planned == 8 and 0 < pending < planned

    resumed = extract_features(
        manifest=manifest_for(Path(killed_cfg.corpus.root)),
        cfg=killed_cfg,
        client=dask_client_inproc,
    )
    assert resumed.batches_computed == pending
    clean_cfg = small_config(clean_dir)
    clean = extract_features(
        manifest=manifest_for(Path(clean_cfg.corpus.root)), cfg=clean_cfg, client=dask_client_inproc
    )
    assert_same_store(RowStore(resumed.store_url), RowStore(clean.store_url))


def test_a_sharded_store_equals_the_unsharded_one_array_for_array(
    tmp_path: Path, small_corpus: Path, dask_client_inproc: object
) -> None:
    manifest = manifest_for(small_corpus)
    stores = {}
    for shard_chunks in (1, 2):
        cfg = small_config(
            tmp_path, f"paths.data_dir={tmp_path / f'data{shard_chunks}'}",
            f"features.shard_chunks={shard_chunks}",
        )  # fmt: skip
        result = extract_features(manifest=manifest, cfg=cfg, client=dask_client_inproc)
        stores[shard_chunks] = (result, RowStore(result.store_url))
    (plain_result, plain), (sharded_result, sharded) = stores[1], stores[2]
    # 72 clips: 5 batches of one 16-row chunk, or 3 batches of one 2-chunk shard.
    assert (plain_result.batches_total, sharded_result.batches_total) == (5, 3)
    logmel = sharded.group()["logmel"]
    assert (logmel.chunks[0], logmel.shards[0]) == (16, 32)  # reads stay chunk by chunk
    objects = {
        name: sorted(p.name for p in Path(s.url, "data.zarr", "logmel", "c").iterdir())
        for name, s in (("plain", plain), ("sharded", sharded))
    }
    assert objects == {"plain": ["0", "1", "2", "3", "4"], "sharded": ["0", "1", "2"]}
    assert plain.index()[["key", "row"]].equals(sharded.index()[["key", "row"]])
    for name, array in plain.group().arrays():
        want = np.asarray(array[:72])
        got = np.asarray(sharded.group()[name][:72])  # type: ignore[index]
        assert got.dtype == want.dtype and np.array_equal(got, want), name
    assert list(sharded.group()[KEY][72:96]) == [""] * 24  # type: ignore[index]


def test_planning_a_manifest_file_in_chunks_equals_planning_it_whole(
    small_cfg: PipelineConfig, small_corpus: Path, tmp_path: Path
) -> None:
    manifest = manifest_for(small_corpus)
    manifest.loc[[3, 40, 41], "status"] = "unreadable"  # quarantined: never items
    path = str(tmp_path / "manifest.parquet")
    write_manifest(manifest, path)
    store = open_feature_store(small_cfg)
    whole, n_whole = unplanned_items(store, [manifest])
    chunked, n_chunked = unplanned_items(
        store, manifest_chunks(path, rows=10, columns=list(ITEM_COLUMNS))
    )
    batched, n_batched = unplanned_items(
        store, manifest_batches(path, rows=10, columns=list(ITEM_COLUMNS))
    )
    assert (n_whole, n_chunked, n_batched) == (69, 69, 69) and chunked == whole
    assert batched == whole  # Arrow batches: the same items, only new rows converted
    assert whole[0]["span"] is None and whole[0][KEY] == clip_key(
        manifest["clip_id"][0], manifest["sha256"][0]
    )
    store.append(whole[::2], columns=("clip_id", "label", "split", "group", "sha256"))
    again, _ = unplanned_items(store, manifest_chunks(path, rows=7, columns=list(ITEM_COLUMNS)))
    assert again == whole[1::2]
    again_batched, _ = unplanned_items(store, manifest_batches(path, rows=7))
    assert again_batched == whole[1::2]
