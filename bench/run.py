"""``make bench``: every benchmark against its baseline in one run.

Writes ``bench/results/<UTC timestamp>.json`` (keys as in DESIGN.md section 6) and
``bench/results/latest.md``, and replaces the table between the bench markers of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from bench.bench_cli import bench_cli
from bench.bench_extract import bench_extract, bench_memory, cache_fractions
from bench.bench_extract_formats import bench_extract_formats
from bench.bench_scale import bench_scale
from melflow.config import PipelineConfig, load_config
from melflow.demo_corpus import generate_demo_corpus
from melflow.ingest import ingest_corpus, load_manifest
from melflow.manifest import ok_rows

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "data" / "bench"
TABLE_START, TABLE_END = "<!-- bench:start -->", "<!-- bench:end -->"


def corpus_config(name: str, per_class: int) -> PipelineConfig:
    """The default (22,050 Hz, ~1 s clips) profile on a bench corpus of ``6 * per_class`` clips."""
    return load_config(
        "default",
        overrides=[
            f"name=bench-{name}",
            f"paths.data_dir={WORK / name / 'data'}",
            f"corpus.root={WORK / f'corpus-{per_class}'}",
            f"corpus.demo.per_class={per_class}",
        ],
    )


def manifest_of(cfg: PipelineConfig) -> Any:
    demo = cfg.corpus.demo
    assert demo is not None
    generate_demo_corpus(root=cfg.corpus.root, per_class=demo.per_class, seed=demo.seed, sr=demo.sr)
    return ok_rows(load_manifest(ingest_corpus(cfg=cfg)))


def cli_corpora(quick: bool) -> dict[str, PipelineConfig]:
    """The corpora of the cold ``melflow extract`` command: 3,000 and 30,000 clips, ingested."""
    sizes = {"3k": 50, "30k": 500} if quick else {"3k": 500, "30k": 5000}
    corpora = {}
    for name, per_class in sizes.items():
        cfg = corpus_config(f"cli-{name}", per_class)
        manifest_of(cfg)
        corpora[name] = cfg
    return corpora


def memory_sizes(sizes: dict[str, int]) -> dict[str, float]:
    """Peak RSS of extraction per corpus size (6 classes x ``per_class``), each from cold."""
    peaks = {}
    for name, per_class in sizes.items():
        cfg = corpus_config(f"memory-{name}", per_class)
        manifest_of(cfg)  # generate + ingest here, so the measured process only extracts
        overrides = [
            f"name={cfg.name}",
            f"paths.data_dir={cfg.paths.data_dir}",
            f"corpus.root={cfg.corpus.root}",
            f"corpus.demo.per_class={per_class}",
        ]
        peaks[f"peak_rss_mb_{name}"] = bench_memory(profile_overrides=overrides)
    return peaks


def machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__.split("+")[0],
        "git_commit": commit,
    }


SECTIONS = (
    "extract", "cache", "extract_formats", "scale", "augment", "train", "fsdd",
    "cv_urbansound", "cli", "memory",
)  # fmt: skip


def section(
    name: str, fn: Callable[[], Any], results: dict[str, Any], only: Sequence[str] = ()
) -> None:
    """Run one section unless ``only`` names others; a failing optional one is not fatal."""
    if only and name not in only:
        return
    print(f"[bench] {name} ...", flush=True)
    start = time.perf_counter()
    try:
        results[name] = fn()
    except ImportError as exc:
        print(f"[bench] {name} skipped: {exc}", flush=True)
        return
    print(f"[bench] {name} done in {time.perf_counter() - start:.0f}s: {results[name]}", flush=True)


def run(quick: bool, only: Sequence[str] = ()) -> dict[str, Any]:
    per_class = 50 if quick else 1700  # 6 classes: 300 or 10,200 clips
    cfg = corpus_config("extract", per_class)
    manifest = manifest_of(cfg)
    durations = load_manifest(ingest_corpus(cfg=cfg))["duration_s"]
    results: dict[str, Any] = {
        "machine": machine(),
        "corpus": {
            "clips": len(manifest),
            "sr": cfg.audio.sr,
            "mean_duration_s": round(float(durations.mean()), 3),
        },
    }
    naive = 300 if quick else 2000
    section(
        "extract",
        lambda: bench_extract(manifest=manifest, cfg=cfg, naive_clips=naive),
        results,
        only,
    )
    section(
        "cache",
        lambda: cache_fractions(
            manifest,
            manifest_of(corpus_config("cache", int(per_class * 1.1))),
            corpus_config("cache", per_class),
        ),
        results,
        only,
    )
    section(
        "extract_formats",
        lambda: bench_extract_formats(
            sources=manifest,
            work=WORK,
            n_clips=120 if quick else 600,
            naive_clips=60 if quick else 200,
        ),
        results,
        only,
    )
    section(
        "scale",
        lambda: bench_scale(manifest=manifest, cfg=cfg, quick=quick),
        results,
        only,
    )
    optional_sections(results, manifest=manifest, cfg=cfg, quick=quick, only=only)
    section("cli", lambda: bench_cli(work=WORK, corpora=cli_corpora(quick)), results, only)
    if not quick:
        section("memory", lambda: memory_sizes({"10k": 1700, "50k": 8400}), results, only)
    return results


def optional_sections(
    results: dict[str, Any],
    *,
    manifest: Any,
    cfg: PipelineConfig,
    quick: bool,
    only: Sequence[str] = (),
) -> None:
    """Augmentation, training, FSDD and UrbanSound CV benchmarks, each from its own module."""
    from bench.bench_augment import bench_augment
    from bench.bench_train import bench_train
    from melflow.features.extract import feature_store_url

    n_aug = 120 if quick else 1200
    section(
        "augment",
        lambda: bench_augment(corpus_dir=cfg.corpus.root, n_clips=n_aug, workers=2),
        results,
        only,
    )
    section("train", lambda: bench_train(store_url=feature_store_url(cfg)), results, only)
    if not quick:
        from bench.bench_cv_urbansound import bench_cv_urbansound
        from bench.bench_fsdd import bench_fsdd

        section("fsdd", bench_fsdd, results, only)
        section("cv_urbansound", bench_cv_urbansound, results, only)


def _shown(value: Any) -> str:
    if isinstance(value, float):
        # Three significant digits below 1: a cached rerun takes well under a millisecond.
        return f"{value:.3g}" if abs(value) < 1 else f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(results: dict[str, Any]) -> str:
    """The table of docs/benchmarks.md: one row per figure, with its baseline."""
    rows = [("section", "figure", "value")]
    for name, values in results.items():
        if not isinstance(values, dict) or name == "machine":
            continue
        for key, value in values.items():
            rows.append((name, key, _shown(value)))
    m = results["machine"]
    head = (
        f"Measured by `make bench` on {m['cpus']} CPUs, Python {m['python']}, torch {m['torch']}, "
        f"commit {m['git_commit']}, {datetime.now(UTC):%Y-%m-%d}.\n\n"
    )
    lines = [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines.insert(1, "|---|---|---:|")
    return head + "\n".join(lines) + "\n"


def update_docs(table: str) -> None:
    """Replace the table between the bench markers of docs/benchmarks.md."""
    page = ROOT / "docs" / "benchmarks.md"
    text = page.read_text()
    if TABLE_START not in text:
        return
    before, rest = text.split(TABLE_START, 1)
    _, after = rest.split(TABLE_END, 1)
    page.write_text(f"{before}{TABLE_START}\n{table}{TABLE_END}{after}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small corpus, a few minutes")
    parser.add_argument(
        "--only",
        nargs="+",
        default=(),
        choices=SECTIONS,
        metavar="SECTION",
        help=f"run just these sections ({', '.join(SECTIONS)})",
    )
    args = parser.parse_args(argv)
    results = run(args.quick, args.only)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    # A partial run (--quick or --only) must not replace the full run's table.
    partial = "-quick" if args.quick else "-only" if args.only else ""
    out = RESULTS / f"{stamp}{partial}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (RESULTS / f"latest{partial}.md").write_text(table)
    if not partial:
        update_docs(table)
    print(table)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
