"""Prediction on long recordings: per-window predictions and a mean-probability label."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
import torch
from conftest import small_config, tone
from torch import nn

from melflow.config import AudioConfig
from melflow.models import ModelMeta
from melflow.predict import predict_files, predict_frame, summarize

SR = 16000
# (label, frequency in Hz, seconds): three labelled tones in sequence, 12 s in all.
SEQUENCE = [("low", 440.0, 6.0), ("mid", 880.0, 4.0), ("high", 1760.0, 2.0)]
CLASSES = [label for label, _, _ in SEQUENCE]


class BandModel(nn.Module):
    """A stand-in classifier: the logit of a class is the level of its tone's mel bin."""

    def __init__(self, bins: list[int]) -> None:
        super().__init__()
        self.bins = bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, n_mels, n_frames) log-mel in dB (the model owns its normalisation).
        return 0.25 * x[:, self.bins, :].mean(dim=-1)


def band_bundle(tmp_path: Path, *audio_overrides: str) -> tuple[nn.Module, ModelMeta]:
    cfg = small_config(tmp_path, "audio.duration_s=2", "audio.max_duration_s=5", *audio_overrides)
    f = cfg.features
    mel = librosa.filters.mel(sr=SR, n_fft=f.n_fft, n_mels=f.n_mels)
    bins = [int(mel[:, round(hz * f.n_fft / SR)].argmax()) for _, hz, _ in SEQUENCE]
    meta = ModelMeta(
        classes=CLASSES,
        model=cfg.train.model.model_dump(mode="json"),
        audio=cfg.audio.model_dump(mode="json"),
        features=f.model_dump(mode="json"),
        feature="logmel",
        mean=[-40.0] * f.n_mels,
        std=[20.0] * f.n_mels,
        n_bins=f.n_mels,
        n_frames=32,
    )
    return BandModel(bins), meta


def long_recording(path: Path) -> str:
    y = np.concatenate([tone(hz, sr=SR, duration_s=s) for _, hz, s in SEQUENCE])
    sf.write(path, y, SR)
    return str(path)


def test_long_file_gets_window_rows_and_the_mean_label(tmp_path: Path) -> None:
    model, meta = band_bundle(tmp_path, "audio.segment={window_s: 2, hop_s: 2}")
    assert AudioConfig.model_validate(meta.audio).segment is not None
    path = long_recording(tmp_path / "long.wav")
    short = tmp_path / "short.wav"
    sf.write(short, tone(1760.0, sr=SR, duration_s=1.0), SR)
    out = predict_frame(model, meta, pd.DataFrame({"path": [path, str(short)]}))

    assert list(out.index) == [0] * 7 + [1]  # the file's row, its 6 windows, the short file
    windows = out.iloc[1:7]
    assert list(windows["offset_s"]) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert list(windows["duration_s"]) == [2.0] * 6
    assert list(windows["label"]) == ["low"] * 3 + ["mid"] * 2 + ["high"]
    whole = out.iloc[0]
    assert np.isnan(whole["offset_s"]) and whole["error"] == ""
    probs = ["prob_low", "prob_mid", "prob_high"]
    np.testing.assert_allclose(whole[probs].to_numpy(float), windows[probs].mean(), atol=1e-9)
    assert whole["label"] == "low"  # 6 s of 12: the largest mean probability
    assert out.iloc[7]["label"] == "high" and np.isnan(out.iloc[7]["offset_s"])


def test_without_segment_config_long_files_use_back_to_back_clips(tmp_path: Path) -> None:
    windowed, meta_windowed = band_bundle(tmp_path, "audio.segment={window_s: 2}")
    model, meta = band_bundle(tmp_path)  # segment unset: windows of audio.duration_s
    frame = pd.DataFrame({"path": [long_recording(tmp_path / "long.wav")]})
    expected = predict_frame(windowed, meta_windowed, frame)
    pd.testing.assert_frame_equal(predict_frame(model, meta, frame), expected)


def test_predict_files_names_each_window_row_and_counts_files(tmp_path: Path) -> None:
    model, meta = band_bundle(tmp_path, "audio.segment={window_s: 2, hop_s: 4}")
    files = [long_recording(tmp_path / "a.wav"), long_recording(tmp_path / "b.wav")]
    out = predict_files(lambda frame: predict_frame(model, meta, frame), files, batch_size=1)
    assert list(out["path"]) == [files[0]] * 4 + [files[1]] * 4  # each file, then 3 windows
    assert list(out["label"]) == ["low", "low", "low", "mid"] * 2  # windows at 0, 4, 8 s
    summary = summarize(out)
    assert (summary["files"], summary["classified"], summary["labels"]) == (2, 2, {"low": 2})


def test_long_path_windows_equal_long_waveform_windows(tmp_path: Path) -> None:
    # A path is validated block by block and each window decoded alone; a waveform is
    # sliced in memory: both give the same clips.
    model, meta = band_bundle(tmp_path, "audio.segment={window_s: 2, hop_s: 1.5}")
    y = np.concatenate([tone(hz, sr=SR, duration_s=s) for _, hz, s in SEQUENCE])
    path = tmp_path / "long_float.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    by_path = predict_frame(model, meta, pd.DataFrame({"path": [str(path)]}))
    by_waveform = predict_frame(model, meta, pd.DataFrame({"waveform": [y], "sr": [SR]}))
    assert len(by_path) == 1 + 8  # starts 0, 1.5, ..., 9 s and a padded 10.5 s tail
    pd.testing.assert_frame_equal(by_path, by_waveform, atol=1e-6)
