"""``scale``: planning a million-clip corpus without decoding, and extraction to S3 (moto).

Planning is what an incremental run does before any batch runs: stream the manifest,
find the clips the store has not planned, plan their batches. It is measured in a fresh
process per corpus size (100k and 1M planned clips, +1 % new), so peak RSS is that of
planning alone. Extraction to a local moto S3 server compares one object per chunk with
sharded stores (``features.shard_chunks``), in one run on the same warm cluster.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.timing import spread, timed
from melflow.config import PipelineConfig, load_config
from melflow.features.extract import (
    FEATURE_COLUMNS,
    ITEM_COLUMNS,
    extract_features,
    feature_layout,
    unplanned_items,
)
from melflow.features.store import RowStore
from melflow.manifest import COLUMNS, manifest_batches, manifest_digest
from melflow.parallel import dask_client

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "data" / "bench" / "scale"
GROUP_ROWS = 65_536
SEED_APPEND = 100_000  # the store is grown to size by appends of this many clips
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}


def synthetic_manifest(path: Path, n_clips: int) -> None:
    """A manifest of ``n_clips`` usable clips (no audio behind it), written group by group."""
    writer = None
    for start in range(0, n_clips, GROUP_ROWS):
        ids = range(start, min(n_clips, start + GROUP_ROWS))
        clip_ids = [f"class{i % 10}/clip{i:07d}.wav" for i in ids]
        frame = pd.DataFrame(
            {
                "clip_id": clip_ids,
                "path": [f"/corpus/{c}" for c in clip_ids],
                "label": [f"class{i % 10}" for i in ids],
                "split": "train",
                "fold": -1,
                "offset_s": float("nan"),
                "group": [f"g{i // 4}" for i in ids],
                "sha256": [f"{i:064x}" for i in ids],
                "duration_s": 1.0,
                "sr": 22050,
                "channels": 1,
                "status": "ok",
                "detail": "",
            },
            columns=list(COLUMNS),
        )
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()


def planned_store(n_clips: int) -> tuple[str, Path]:
    """A store with ``n_clips`` planned clips and a manifest of those plus 1 % new ones.

    Built once per size and kept under ``data/bench/scale`` (planning only, no features).
    """
    folder = WORK / f"{n_clips}"
    url, manifest = str(folder / "store"), folder / "manifest.parquet"
    ready = folder / "ready-2"  # 2: stores with consolidated key parts
    if ready.exists():
        return url, manifest
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    synthetic_manifest(manifest, n_clips + n_clips // 100)
    cfg = load_config("default", overrides=[f"paths.data_dir={folder}"])
    store = RowStore(url)
    store.ensure(feature_layout(audio=cfg.audio, features=cfg.features))
    chunks = manifest_batches(str(manifest), rows=SEED_APPEND)
    left = n_clips
    for batch in chunks:  # as n_clips / SEED_APPEND incremental runs would have grown it
        batch = batch.slice(0, left)
        items, _ = unplanned_items(store, [batch])
        store.append(items, columns=FEATURE_COLUMNS)
        left -= batch.num_rows
        if left == 0:
            break
    ready.touch()
    return url, manifest


def peak_rss_mb() -> float:
    """This process's peak RSS in MB, since it started its program.

    ``ru_maxrss`` would not do: Linux carries it over from the forking parent across
    ``exec``, so a child of a large benchmark process reports the parent's peak.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plan_once(url: str, manifest: str) -> dict[str, float]:
    """Plan the unplanned clips of ``manifest`` into the store at ``url`` (this process)."""
    start = time.perf_counter()
    store = RowStore(url)
    chunks = manifest_batches(manifest, columns=list(ITEM_COLUMNS))
    items, _ = unplanned_items(store, chunks)
    batches = store.append(items, columns=FEATURE_COLUMNS)
    store.pending_batches()
    seconds = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    # Undo the append (plan, batch and key files), so the next repeat plans the same clips
    # again and, like a real run, creates its files: on ext4, replacing an existing file
    # by rename also flushes it to disk (~2 ms each, 157 batch files at 1M).
    if batches:
        meta, first, end = Path(url, "_melflow"), batches[0].index, batches[-1].index + 1
        for b in batches:
            (meta / "batches" / f"{b.index:08d}.json").unlink()
        (meta / "keys" / f"{first:08d}.npy").unlink()
        (meta / "plans" / f"{first:08d}-{end:08d}.parquet").unlink()
        # The store is grown so that this append never consolidates the key index.
        assert not (meta / "keys" / f"{0:08d}-{end:08d}.npy").exists()
    return {"seconds": seconds, "peak_rss_mb": peak_mb, "new": len(items), "batches": len(batches)}


def plan_in_fresh_process(n_clips: int) -> dict[str, float]:
    url, manifest = planned_store(n_clips)
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_scale", url, str(manifest)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["new"] == n_clips // 100, result
    return result


def planning(sizes: dict[str, int], repeats: int = 3) -> dict[str, float]:
    """Seconds to plan +1 % new clips at the largest size, peak RSS of planning per size."""
    out: dict[str, float] = {"clips": max(sizes.values())}
    for label, n_clips in sizes.items():
        runs = [plan_in_fresh_process(n_clips) for _ in range(repeats)]
        out.update(spread(f"plan_1pct_new_s_{label}", [r["seconds"] for r in runs]))
        out.update(spread(f"plan_peak_rss_mb_{label}", [r["peak_rss_mb"] for r in runs]))
    largest = max(sizes, key=lambda k: sizes[k])
    for suffix in ("", "_min", "_max"):
        out[f"plan_1pct_new_s{suffix}"] = out[f"plan_1pct_new_s_{largest}{suffix}"]
    small, large = sorted(sizes, key=lambda k: sizes[k])[:2]
    out["plan_peak_rss_ratio"] = out[f"plan_peak_rss_mb_{large}"] / out[f"plan_peak_rss_mb_{small}"]
    return out


class MotoServer:
    """A moto S3 server on 127.0.0.1 for the block, with one bucket."""

    def __init__(self, bucket: str) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.endpoint, self.bucket = f"http://127.0.0.1:{port}", bucket
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> MotoServer:
        import boto3

        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.s3.create_bucket(Bucket=self.bucket)
                return self
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)

    def objects(self, prefix: str) -> int:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sum(len(page.get("Contents", [])) for page in pages)


def s3_extraction(
    manifest: pd.DataFrame, cfg: PipelineConfig, *, shard_chunks: int = 8, repeats: int = 3
) -> dict[str, float]:
    """Clips/s and objects per 10k clips of extraction to moto S3, sharded vs unsharded."""
    digest = manifest_digest(manifest)
    out: dict[str, float] = {}
    with MotoServer("melflow-bench") as s3:
        options = {
            "key": "bench",
            "secret": "bench",
            "client_kwargs": {"endpoint_url": s3.endpoint},
        }
        settings = {"unsharded": 1, "sharded": shard_chunks}
        configs = {
            name: cfg.model_copy(
                update={
                    "features": cfg.features.model_copy(update={"shard_chunks": n}),
                    "paths": cfg.paths.model_copy(update={"storage_options": options}),
                }
            )
            for name, n in settings.items()
        }
        with dask_client(cfg.dask.model_copy(update={"n_workers": 2})) as client:
            counter = iter(range(10_000))

            def extract(name: str) -> None:
                data_dir = f"s3://{s3.bucket}/{name}-{next(counter)}"
                c = configs[name]
                c = c.model_copy(
                    update={"paths": c.paths.model_copy(update={"data_dir": data_dir})}
                )
                extract_features(manifest=manifest, cfg=c, client=client, digest=digest)
                objects[name] = s3.objects(data_dir.split("/", 3)[3] + "/")

            objects: dict[str, int] = {}
            extract("unsharded")  # warm-up: workers import and JIT before timing
            for name in settings:
                timing = timed(partial(extract, name), repeats=repeats)
                out.update(
                    timing.figures(f"s3_{name}_clips_per_s", value=lambda s: len(manifest) / s)
                )
                out[f"objects_per_10k_{name}"] = round(objects[name] * 10_000 / len(manifest))
    out["s3_sharded_over_unsharded"] = (
        out["s3_sharded_clips_per_s"] / out["s3_unsharded_clips_per_s"]
    )
    return out


def bench_scale(*, manifest: pd.DataFrame, cfg: PipelineConfig, quick: bool) -> dict[str, Any]:
    """The ``scale`` section: planning at 100k and 1M clips (10k and 100k with ``quick``)."""
    sizes = {s: SIZES[s] for s in (("10k", "100k") if quick else ("100k", "1m"))}
    out: dict[str, Any] = planning(sizes)
    n = 300 if quick else 3000
    out.update(s3_extraction(manifest.head(n), cfg))
    out["s3_clips"] = min(n, len(manifest))
    return out


if __name__ == "__main__":
    # python -m bench.bench_scale planning 100k 1m: the planning figures alone (JSON);
    # python -m bench.bench_scale <store url> <manifest>: one plan (what planning() runs).
    if sys.argv[1] == "planning":
        print(json.dumps(planning({s: SIZES[s] for s in sys.argv[2:]}), indent=1))
    else:
        print(json.dumps(plan_once(sys.argv[1], sys.argv[2])))
