"""Figures are written as PNGs of the expected layout."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
from conftest import tone

from melflow.config import FeaturesConfig
from melflow.evaluation.figures import (
    confusion_matrix_figure,
    spectrogram_panel_figure,
    training_curves_figure,
)


def _png_shape(path: str) -> tuple[int, ...]:
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return tuple(matplotlib.image.imread(path).shape)


def test_confusion_matrix_png(tmp_path: Path) -> None:
    path = confusion_matrix_figure([[5, 1], [0, 4]], classes=["a", "b"], path=tmp_path / "x/cm.png")
    height, width, _ = _png_shape(path)
    big = confusion_matrix_figure(
        np.eye(12, dtype=int), classes=[f"c{i}" for i in range(12)], path=tmp_path / "cm12.png"
    )
    assert _png_shape(big)[0] > height > 200 and width > 200


def test_training_curves_png_with_and_without_validation(tmp_path: Path) -> None:
    history = [
        {
            "epoch": e,
            "train_loss": 2.0 / e,
            "val_loss": 2.1 / e,
            "val_accuracy": 0.2 * e,
            "val_macro_f1": 0.18 * e,
            "lr": 1e-3,
        }
        for e in range(1, 5)
    ]
    assert _png_shape(training_curves_figure(history, path=tmp_path / "curves.png"))[1] > 600
    no_val = [{**h, "val_loss": None, "val_accuracy": None, "val_macro_f1": None} for h in history]
    assert Path(training_curves_figure(no_val, path=tmp_path / "no_val.png")).stat().st_size > 0


def test_spectrogram_panel_has_a_row_per_example(tmp_path: Path) -> None:
    sr = 8000
    features = FeaturesConfig(n_fft=256, hop_length=80, n_mels=40)
    one = spectrogram_panel_figure(
        [("a", tone(440, sr=sr, duration_s=0.5))],
        sr=sr,
        features=features,
        path=tmp_path / "one.png",
    )
    three = spectrogram_panel_figure(
        [(str(f), tone(f, sr=sr, duration_s=0.5)) for f in (300, 900, 2000)],
        sr=sr,
        features=features,
        path=tmp_path / "three.png",
    )
    assert _png_shape(three)[0] > 2.5 * _png_shape(one)[0]
