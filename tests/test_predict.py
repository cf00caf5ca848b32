"""Raw-audio prediction: row decoding, batching over files, and ``melflow predict``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import typer
from bundles import tiny_bundle
from conftest import small_config, tone
from torch import nn
from typer.testing import CliRunner

from melflow.audio.io import load_clip, resample
from melflow.config import PipelineConfig
from melflow.errors import ParameterError
from melflow.lineage import SUMMARY_METRICS
from melflow.models import ModelMeta, predict_waveforms
from melflow.predict import (
    decode_rows,
    find_audio_files,
    predict_files,
    predict_frame,
    summarize,
)

CLASSES = ["a", "b", "c"]
COLUMNS = ["path", "label", "prob_a", "prob_b", "prob_c", "error", "offset_s", "duration_s"]


@pytest.fixture
def cfg(tmp_path: Path) -> PipelineConfig:
    return small_config(tmp_path)


@pytest.fixture
def bundle(cfg: PipelineConfig, tmp_path: Path) -> tuple[nn.Module, ModelMeta]:
    return tiny_bundle(cfg, str(tmp_path / "bundle"), classes=CLASSES)


@pytest.fixture
def registered(cfg: PipelineConfig, bundle: tuple[nn.Module, ModelMeta], tmp_path: Path) -> str:
    """The bundle registered as version 1 (challenger, no champion yet)."""
    from melflow.registry import log_and_register

    predictions = pd.DataFrame({"clip_id": ["x", "y", "z"], "label": CLASSES, "pred": CLASSES})
    return log_and_register(
        cfg=cfg,
        bundle_dir=str(tmp_path / "bundle"),
        history=[],
        report=dict.fromkeys(SUMMARY_METRICS, 1.0),
        artifacts=[],
        tags={},
        predictions=predictions,
    ).version


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Five tones at 22.05 kHz in nested folders, one corrupt WAV, one text file."""
    root = tmp_path / "inbox"
    for i, freq in enumerate((200.0, 500.0, 900.0, 1800.0, 3500.0)):
        path = root / ("sub" if i % 2 else "") / f"tone{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(freq, sr=22050, duration_s=0.4), 22050)
    (root / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    (root / "notes.txt").write_text("not audio")
    return root


def test_decode_rows_matches_training_decoding_and_reports_bad_rows(
    cfg: PipelineConfig, folder: Path
) -> None:
    sr = cfg.audio.sr
    y = tone(440.0, sr=44100, duration_s=0.2)
    stereo = np.stack([y, y], axis=1)
    frame = pd.DataFrame(
        {
            "path": [str(folder / "tone0.wav"), None, None, None, str(folder / "broken.wav")],
            "waveform": [None, y, stereo, [np.nan, 0.0], None],
            "sr": [None, 44100, 44100, sr, None],
        }
    )
    decoded = decode_rows(frame, audio=cfg.audio)
    errors, windows = decoded.errors, decoded.windows
    clips = [None if c is None else c[0] for c in decoded.clips]  # short rows: one clip each
    assert windows == [[]] * 5 and {c.shape[0] for c in decoded.clips if c is not None} == {1}
    n = round(sr * cfg.audio.duration_s)
    np.testing.assert_array_equal(
        clips[0], load_clip(str(folder / "tone0.wav"), sr=sr, duration_s=cfg.audio.duration_s)
    )
    expected = np.zeros(n, dtype=np.float32)
    resampled = resample(y, orig_sr=44100, target_sr=sr)
    expected[: resampled.size] = resampled
    mono, stereo_mix = clips[1], clips[2]
    assert mono is not None and stereo_mix is not None and errors[:3] == ["", "", ""]
    np.testing.assert_allclose(mono, expected, atol=1e-6)
    np.testing.assert_allclose(stereo_mix, mono, atol=1e-6)  # stereo is downmixed
    assert clips[3] is None and errors[3].startswith("non_finite")
    assert clips[4] is None and errors[4].split(":")[0] in {"not_audio", "corrupt"}
    with pytest.raises(ParameterError, match="'path' column"):
        decode_rows(pd.DataFrame({"x": [1]}), audio=cfg.audio)


def test_predict_frame_equals_bundle_predictions_in_batches(
    cfg: PipelineConfig, bundle: tuple[nn.Module, ModelMeta]
) -> None:
    model, meta = bundle
    sr = cfg.audio.sr
    clips = np.stack(
        [tone(f, sr=sr, duration_s=cfg.audio.duration_s) for f in (150, 700, 2500, 5000, 60)]
    )
    frame = pd.DataFrame({"waveform": list(clips), "sr": [sr] * len(clips)})
    frame.loc[2, "sr"] = 0  # one bad row in the middle keeps its place
    out = predict_frame(model, meta, frame, batch_size=2)
    assert list(out.columns) == COLUMNS[1:]
    assert list(out.index) == [0, 1, 2, 3, 4] and out[["offset_s", "duration_s"]].isna().all(None)
    good = [0, 1, 3, 4]
    expected = predict_waveforms(model, meta, clips[good], sr=sr)
    np.testing.assert_allclose(out.loc[good, ["prob_a", "prob_b", "prob_c"]], expected, atol=1e-6)
    assert list(out.loc[good, "label"]) == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert out.loc[2, "error"].startswith("bad_sample_rate") and pd.isna(out.loc[2, "label"])
    assert out.loc[2, ["prob_a", "prob_b", "prob_c"]].isna().all()


def test_find_audio_files_walks_folders_and_keeps_named_files(folder: Path) -> None:
    found = find_audio_files([str(folder)], extensions=(".wav", ".flac"))
    assert [Path(p).name for p in found] == [
        "broken.wav",
        "tone1.wav",
        "tone3.wav",
        "tone0.wav",
        "tone2.wav",
        "tone4.wav",
    ]  # sorted by full path: sub/ before tone*.wav
    named = find_audio_files([str(folder / "notes.txt"), str(folder / "sub")], extensions=(".wav",))
    assert [Path(p).name for p in named] == ["notes.txt", "tone1.wav", "tone3.wav"]
    with pytest.raises(ParameterError, match="no such file"):
        find_audio_files([str(folder / "missing")], extensions=(".wav",))
    with pytest.raises(ParameterError, match="no audio files"):
        find_audio_files([str(folder / "sub")], extensions=(".ogg",))


def test_predict_files_batches_in_order_and_summarizes(
    cfg: PipelineConfig, bundle: tuple[nn.Module, ModelMeta], folder: Path
) -> None:
    model, meta = bundle
    calls: list[int] = []
    progress: list[tuple[int, int]] = []

    def predictor(frame: pd.DataFrame) -> pd.DataFrame:
        calls.append(len(frame))
        return predict_frame(model, meta, frame)

    files = find_audio_files([str(folder)], extensions=cfg.corpus.extensions)
    out = predict_files(
        predictor, files, batch_size=4, on_progress=lambda d, t: progress.append((d, t))
    )
    assert calls == [4, 2] and progress == [(4, 6), (6, 6)]
    assert list(out["path"]) == files
    assert list(out.columns) == COLUMNS
    broken = out["path"].str.endswith("broken.wav")
    assert out.loc[broken, "error"].str.len().gt(0).all() and out.loc[~broken, "error"].eq("").all()
    summary = summarize(out)
    assert (summary["files"], summary["classified"], summary["errors"]) == (6, 5, 1)
    assert sum(summary["labels"].values()) == 5
    with pytest.raises(ParameterError):
        predict_files(predictor, files, batch_size=0)


def test_predict_task_writes_csv_with_error_row(
    cfg: PipelineConfig, registered: str, folder: Path, tmp_path: Path
) -> None:
    from melflow.tasks.progress import set_sink
    from melflow.tasks.registry import predict_task

    seen: list[tuple[str, int, int]] = []
    set_sink(lambda stage, done, total: seen.append((stage, done, total)))
    try:
        out = tmp_path / "preds.csv"
        summary = predict_task.fn(cfg, [str(folder)], "challenger", str(out), 4)
    finally:
        set_sink(None)
    assert seen[-1] == ("predict", 6, 6)
    assert summary["version"] == "1" and (summary["files"], summary["errors"]) == (6, 1)
    table = pd.read_csv(out)
    table["error"] = table["error"].fillna("")
    assert list(table.columns) == COLUMNS
    assert (table["error"] != "").sum() == 1 and table.loc[
        table["error"] != "", "path"
    ].str.endswith("broken.wav").all()
    ok = table[table["error"] == ""]
    np.testing.assert_allclose(ok[["prob_a", "prob_b", "prob_c"]].sum(axis=1), 1.0, atol=1e-5)
    assert set(ok["label"]) <= set(CLASSES)


def _predict_app() -> typer.Typer:
    from melflow.flows.cli_models import predict

    app = typer.Typer()
    app.command()(predict)
    return app


def test_predict_cli_writes_each_file_once_with_ingest_reasons(
    cfg: PipelineConfig, registered: str, folder: Path, tmp_path: Path
) -> None:
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.wav").write_text("hello")
    nan = np.zeros(4000, dtype=np.float32)
    nan[10] = np.nan
    sf.write(folder / "nan.wav", nan, 22050, subtype="FLOAT")
    out = tmp_path / "cli.csv"
    data = ["-p", "small", "-s", f"paths.data_dir={tmp_path / 'data'}"]
    twice = str(folder / "tone0.wav")  # named, and inside the folder: predicted once
    args = [str(folder), twice, twice, "-m", registered, "-o", str(out), *data]
    result = CliRunner().invoke(_predict_app(), args)
    assert result.exit_code == 1, result.output  # some files failed: documented status 1
    assert "9 files" in result.output and str(out) in result.output
    table = pd.read_csv(out).set_index("path")
    assert len(table) == 9 and table.index.is_unique
    reasons = table["error"].dropna().map(lambda e: e.split(":")[0]).to_dict()
    assert reasons == {
        str(folder / "broken.wav"): "corrupt",
        str(folder / "empty.wav"): "empty_file",
        str(folder / "text.wav"): "not_audio",
        str(folder / "nan.wav"): "non_finite",
    }
    assert table["label"].notna().sum() == 5

    missing = CliRunner().invoke(_predict_app(), [str(folder), "-m", "champion", *data])
    assert missing.exit_code == 2 and "no alias 'champion'" in missing.output


@pytest.mark.parametrize("suffix", [".json", ".parquet", ".csv"])
def test_predict_cli_format_follows_the_extension(
    cfg: PipelineConfig, registered: str, folder: Path, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"p{suffix}"
    data = ["-p", "small", "-s", f"paths.data_dir={tmp_path / 'data'}"]
    tones = [str(folder / "tone0.wav"), str(folder / "sub" / "tone1.wav")]
    result = CliRunner().invoke(_predict_app(), [*tones, "-m", registered, "-o", str(out), *data])
    assert result.exit_code == 0, result.output
    read = {".json": pd.read_json, ".parquet": pd.read_parquet, ".csv": pd.read_csv}[suffix]
    table = read(out)
    assert list(table["path"]) == tones
    np.testing.assert_allclose(table[["prob_a", "prob_b", "prob_c"]].sum(axis=1), 1.0, atol=1e-5)


def test_predict_cli_stdout_and_json_summary(
    cfg: PipelineConfig, registered: str, folder: Path, tmp_path: Path
) -> None:
    data = ["-p", "small", "-s", f"paths.data_dir={tmp_path / 'data'}"]
    tone0 = str(folder / "tone0.wav")
    summary = CliRunner().invoke(
        _predict_app(), [tone0, "-m", registered, "-o", str(tmp_path / "p.csv"), "--json", *data]
    )
    assert summary.exit_code == 0, summary.output
    parsed = json.loads(summary.stdout)
    assert (parsed["files"], parsed["errors"], parsed["version"]) == (1, 0, registered)
    piped = CliRunner().invoke(_predict_app(), [tone0, "-m", registered, "-o", "-", *data])
    assert piped.exit_code == 0, piped.output
    lines = piped.stdout.splitlines()
    assert lines[0].startswith("path,label,prob_a") and lines[1].startswith(f"{tone0},")
    assert not (tmp_path / "-").exists()


def test_predict_cli_refuses_an_unwritable_out_before_any_work(
    cfg: PipelineConfig, folder: Path, tmp_path: Path
) -> None:
    data = ["-p", "small", "-s", f"paths.data_dir={tmp_path / 'data'}"]
    (tmp_path / "inbox.csv").mkdir()
    cases = {
        str(tmp_path / "nowhere" / "p.csv"): "does not exist",
        str(tmp_path / "inbox.csv"): "is a folder",
        str(tmp_path / "p.txt"): "unknown format",
        "/proc/p.csv": "cannot write there",
    }
    for out, message in cases.items():
        result = CliRunner().invoke(_predict_app(), [str(folder), "-o", out, *data])
        assert result.exit_code == 2 and message in result.output, (out, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "data" / "mlflow.db").exists()  # failed before the registry
