"""Evaluation figures as PNG files: confusion matrix, training curves, spectrogram panels.

Figures are built on :class:`matplotlib.figure.Figure` directly (rendered by Agg), never
through ``pyplot``, so they need no display, keep no global state and are thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import librosa.display
import numpy as np
from matplotlib.figure import Figure

from melflow.config import FeaturesConfig
from melflow.features.spectral import compute_features

DPI = 110


def _save(fig: Figure, path: str | Path) -> str:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return str(path)


def confusion_matrix_figure(
    cm: Sequence[Sequence[int]] | np.ndarray,
    *,
    classes: Sequence[str],
    path: str | Path,
    title: str = "Confusion matrix",
) -> str:
    """Counts per (true, predicted) class, coloured by the row-normalized rate (recall).

    Parameters
    ----------
    cm : array-like, shape ``(n_classes, n_classes)``
        Rows are true classes, columns predicted classes.
    """
    counts = np.asarray(cm, dtype=np.int64)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.45 * len(classes)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(ticks, labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (i, j), n in np.ndenumerate(counts):
        ax.text(
            j,
            i,
            str(n),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if rates[i, j] > 0.5 else "black",
        )
    return _save(fig, path)


def training_curves_figure(history: Sequence[dict[str, Any]], *, path: str | Path) -> str:
    """Train/validation loss and validation macro-F1 (and accuracy) per epoch."""
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 3.8))
    loss_ax, score_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    val = [(h["epoch"], h) for h in history if h.get("val_loss") is not None]
    if val:
        val_epochs = [e for e, _ in val]
        loss_ax.plot(val_epochs, [h["val_loss"] for _, h in val], marker="o", label="validation")
        score_ax.plot(
            val_epochs, [h["val_macro_f1"] for _, h in val], marker="o", label="val macro-F1"
        )
        score_ax.plot(
            val_epochs,
            [h["val_accuracy"] for _, h in val],
            marker=".",
            linestyle="--",
            label="val accuracy",
        )
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    score_ax.set(xlabel="epoch", ylabel="score", title="Validation", ylim=(0.0, 1.02))
    for ax in (loss_ax, score_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    return _save(fig, path)


def spectrogram_panel_figure(
    examples: Sequence[tuple[str, np.ndarray]],
    *,
    sr: int,
    features: FeaturesConfig,
    path: str | Path,
) -> str:
    """One row per example: STFT power in dB (log-frequency axis) beside its log-mel.

    Parameters
    ----------
    examples : sequence of (str, np.ndarray)
        ``(title, y)`` with ``y`` a mono waveform ``(n_samples,)`` at ``sr`` Hz.
    features : FeaturesConfig
        ``n_fft``, ``hop_length``, ``win_length``, ``n_mels``, ``fmin``, ``fmax``, ``top_db``.
    """
    fig = Figure(figsize=(10, 2.4 * max(len(examples), 1)))
    axes = fig.subplots(max(len(examples), 1), 2, squeeze=False)
    # The pipeline's own feature code, so the panel shows exactly what the model sees.
    both = features.model_copy(update={"kinds": ("stft", "logmel")})
    mel_axis: dict[str, Any] = {
        "y_axis": "mel",
        "fmin": features.fmin,
        "fmax": features.fmax or sr / 2,
    }
    for (title, y), row in zip(examples, axes, strict=False):
        spectra = compute_features(y, sr=sr, cfg=both)
        panels: tuple[tuple[np.ndarray, dict[str, Any], str], ...] = (
            (spectra["stft"], {"y_axis": "log"}, "spectrogram"),
            (spectra["logmel"], mel_axis, f"log-mel ({features.n_mels} bands)"),
        )
        for ax, (S_db, axis, name) in zip(row, panels, strict=True):
            image = librosa.display.specshow(
                S_db,
                ax=ax,
                sr=sr,
                hop_length=features.hop_length,
                x_axis="time",
                cmap="magma",
                **axis,
            )
            fig.colorbar(image, ax=ax, format="%+.0f dB")
            ax.set_title(f"{title}: {name}")
    fig.tight_layout()
    return _save(fig, path)
