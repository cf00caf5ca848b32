"""A zoo of broken files: each is quarantined with its own reason, good files stay ``ok``."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import small_config, tone

from melflow.audio.io import MAX_CHANNELS, REASONS
from melflow.ingest import ingest_corpus, load_manifest

SR = 8000


def encode(y: np.ndarray, *, sr: int = SR, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, y, sr, format=fmt, subtype=subtype)
    return buffer.getvalue()


def clip(freq_hz: float, duration_s: float = 0.3) -> np.ndarray:
    return tone(freq_hz, sr=SR, duration_s=duration_s)


def with_nan() -> bytes:
    y = clip(300.0)
    y[100] = np.nan
    return encode(y, subtype="FLOAT")


GOOD: dict[str, Callable[[], bytes]] = {
    "dog_good1.wav": lambda: encode(clip(300.0), subtype="PCM_16"),
    "cat_good2.flac": lambda: encode(np.stack([clip(400.0), clip(450.0)], axis=1), fmt="FLAC"),
    "cat_good3.ogg": lambda: encode(clip(500.0), fmt="OGG"),
    "dog_good4.mp3": lambda: encode(clip(600.0), fmt="MP3"),
}
# file name -> (bytes, expected status); limits: audio.min/max_duration_s = 0.05 / 2 s.
BAD: dict[str, tuple[Callable[[], bytes], str]] = {
    "dog_empty.wav": (lambda: b"", "empty_file"),
    "dog_random.wav": (lambda: np.random.default_rng(0).bytes(4000), "not_audio"),
    "cat_text.flac": (lambda: b"this is a text file\n" * 50, "not_audio"),
    "cat_header_cut.wav": (lambda: GOOD["dog_good1.wav"]()[:20], "corrupt"),
    # The data chunk declares 0.3 s; libsndfile would silently return the 0.1 s present.
    "dog_data_cut.wav": (lambda: GOOD["dog_good1.wav"]()[: 44 + 1600], "corrupt"),
    "cat_ogg_cut.ogg": (lambda: GOOD["cat_good3.ogg"]()[:300], "corrupt"),
    "dog_zero_frames.wav": (lambda: encode(np.zeros(0, np.float32)), "no_samples"),
    "dog_silent.wav": (lambda: encode(np.zeros(SR // 2, np.float32)), "silent"),
    "cat_short.wav": (lambda: encode(clip(300.0, duration_s=0.02)), "too_short"),
    "cat_long.wav": (lambda: encode(clip(300.0, duration_s=2.5)), "too_long"),
    "dog_sr500.wav": (lambda: encode(np.full(400, 0.5, np.float32), sr=500), "bad_sample_rate"),
    "cat_channels.wav": (
        lambda: encode(np.tile(clip(700.0)[:, None], (1, MAX_CHANNELS + 4))),
        "too_many_channels",
    ),
    "dog_nan.wav": (with_nan, "non_finite"),
    "dog_good1_copy.wav": (lambda: GOOD["dog_good1.wav"](), "duplicate"),
}


def build_zoo(tmp_path: Path) -> Path:
    """Good and bad files under ``corpus/clips``, plus a symlink out of the root."""
    clips = tmp_path / "corpus" / "clips"
    clips.mkdir(parents=True)
    for name, make in GOOD.items():
        (clips / name).write_bytes(make())
    for name, (make, _) in BAD.items():
        (clips / name).write_bytes(make())
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "real.wav").write_bytes(encode(clip(800.0)))
    os.symlink(outside / "real.wav", clips / "dog_link.wav")
    return tmp_path / "corpus"


def expected_statuses(extra: dict[str, str]) -> dict[str, str]:
    expected = {f"clips/{name}": "ok" for name in GOOD}
    expected |= {f"clips/{name}": reason for name, (_, reason) in BAD.items()}
    expected["clips/dog_link.wav"] = "path_outside_root"
    return expected | extra


def check(tmp_path: Path, expected: dict[str, str], *overrides: str) -> None:
    cfg = small_config(tmp_path, "audio.max_duration_s=2", "corpus.demo=null", *overrides)
    result = ingest_corpus(cfg=cfg)
    df = load_manifest(result)
    assert dict(zip(df["clip_id"], df["status"], strict=True)) == expected
    assert set(expected.values()) <= {"ok", *REASONS}

    bad = {cid for cid, status in expected.items() if status != "ok"}
    report = pd.read_csv(result.report_path, keep_default_na=False)
    assert list(report.columns) == ["clip_id", "path", "status", "detail"]
    assert set(report["clip_id"]) == bad and len(report) == len(bad)
    assert (report["detail"] != "").all()
    assert dict(zip(report["clip_id"], report["status"], strict=True)) == {
        cid: expected[cid] for cid in bad
    }
    assert result.n_quarantined == len(bad) and result.n_ok == len(expected) - len(bad)
    assert sum(result.reasons.values()) == len(bad)

    ok = df[df["status"] == "ok"].set_index("clip_id")
    assert ok.loc["clips/cat_good2.flac", "channels"] == 2
    assert ok["duration_s"].round(2).eq(0.3).all()
    copy = df.set_index("clip_id").loc["clips/dog_good1_copy.wav"]
    assert copy["detail"] == "same bytes as clips/dog_good1.wav"


def test_zoo_from_folder_with_regex_labels(tmp_path: Path) -> None:
    root = build_zoo(tmp_path)
    (root / "clips" / "README.wav").write_bytes(encode(clip(900.0)))
    check(
        tmp_path,
        expected_statuses({"clips/README.wav": "unlabelled"}),
        "corpus.label_source=regex",
        "corpus.filename_regex=^(?P<label>[a-z]+)_",
    )


def test_zoo_from_a_csv_manifest(tmp_path: Path) -> None:
    root = build_zoo(tmp_path)
    (root / "clips" / "cat_folder.wav").mkdir()
    (root / "clips" / "nolabel.wav").write_bytes(encode(clip(950.0)))
    rows = [
        {"path": path.relative_to(root).as_posix(), "label": path.name.split("_")[0]}
        for path in sorted((root / "clips").iterdir())
    ]
    rows += [
        {"path": "../outside/real.wav", "label": "dog"},
        {"path": str(tmp_path / "outside" / "real.wav"), "label": "dog"},
        {"path": "clips/absent.wav", "label": "cat"},
        {"path": "./clips/dog_good1.wav", "label": "dog"},
    ]
    for row in rows:
        if row["path"] == "clips/nolabel.wav":
            row["label"] = ""
    pd.DataFrame(rows).to_csv(root / "meta.csv", index=False)
    extra = {
        "clips/cat_folder.wav": "unreadable",
        "clips/nolabel.wav": "unlabelled",
        "../outside/real.wav": "path_outside_root",
        str(tmp_path / "outside" / "real.wav"): "path_outside_root",
        "clips/absent.wav": "missing",
        "clips/dog_good1.wav#2": "duplicate",
    }
    check(
        tmp_path,
        expected_statuses(extra),
        "corpus.label_source=manifest",
        "corpus.manifest=meta.csv",
    )


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_zoo_file_alone_is_named_in_the_report(tmp_path: Path, name: str) -> None:
    make, reason = BAD[name]
    clips = tmp_path / "corpus" / "dog"
    clips.mkdir(parents=True)
    (clips / "a_first.wav").write_bytes(GOOD["dog_good1.wav"]())
    (clips / name).write_bytes(make())
    cfg = small_config(tmp_path, "audio.max_duration_s=2", "corpus.demo=null")
    result = ingest_corpus(cfg=cfg)
    report = pd.read_csv(result.report_path, keep_default_na=False)
    assert report[["clip_id", "status"]].values.tolist() == [[f"dog/{name}", reason]]
