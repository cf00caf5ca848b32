"""A seeded synthetic corpus of distinguishable sound classes, written folder-per-class.

Each clip's random generator is seeded from ``(seed, class index, clip index)``, so the
same arguments give byte-identical WAV files, and growing ``per_class`` only adds files.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from melflow.errors import ParameterError
from melflow.storage import write_bytes_atomic

Generator = Callable[[np.random.Generator, np.ndarray, int], np.ndarray]


def _alarm(rng: np.random.Generator, t: np.ndarray, sr: int) -> np.ndarray:
    f0 = rng.uniform(1800, 2600)
    rate = rng.uniform(3.0, 6.0)
    gate = (np.sin(2 * np.pi * rate * t) > 0).astype(np.float32)
    return gate * np.sin(2 * np.pi * f0 * t)


def _siren(rng: np.random.Generator, t: np.ndarray, sr: int) -> np.ndarray:
    centre, depth, rate = rng.uniform(700, 1000), rng.uniform(200, 400), rng.uniform(0.8, 2.0)
    phase = 2 * np.pi * (centre * t - depth / (2 * np.pi * rate) * np.cos(2 * np.pi * rate * t))
    return np.sin(phase)


def _chirp(rng: np.random.Generator, t: np.ndarray, sr: int) -> np.ndarray:
    n_chirps = int(rng.integers(2, 5))
    f_lo, f_hi = rng.uniform(300, 600), rng.uniform(3000, 5000)
    period = t[-1] / n_chirps + 1e-9
    local = np.mod(t, period) / period
    phase = 2 * np.pi * np.cumsum(f_lo + (f_hi - f_lo) * local) / sr
    return np.sin(phase) * (1 - local)


def _engine(rng: np.random.Generator, t: np.ndarray, sr: int) -> np.ndarray:
    f0 = rng.uniform(40, 90)
    wobble = 1 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t)
    y = sum(np.sin(2 * np.pi * k * f0 * wobble * t) / k for k in range(1, 8))
    return np.asarray(y) / 2


def _noise_burst(rng: np.random.Generator, t: np.ndarray, sr: int) -> np.ndarray:
    env = np.zeros_like(t)
    for _ in range(int(rng.integers(2, 5))):
        start = rng.uniform(0, t[-1] * 0.8)
        env += np.exp(-np.clip(t - start, 0, None) * rng.uniform(8, 20)) * (t >= start)
    return rng.standard_normal(t.shape) * np.clip(env, 0, 1)


def _clicks(rng: np.random.Generator, t: np.ndarray, sr: int) -> np.ndarray:
    y = np.zeros_like(t)
    rate = rng.uniform(8, 20)
    positions = np.arange(rng.uniform(0, 1 / rate), t[-1], 1 / rate)
    width = max(1, sr // 2000)
    for p in positions:
        i = int(p * sr)
        y[i : i + width] = rng.choice([-1.0, 1.0])
    return y


CLASSES: dict[str, Generator] = {
    "alarm": _alarm,
    "siren": _siren,
    "chirp": _chirp,
    "engine": _engine,
    "noise_burst": _noise_burst,
    "clicks": _clicks,
}


def synthesize(
    label: str, *, rng: np.random.Generator, sr: int, duration_s: float, noise_db: float = -35.0
) -> np.ndarray:
    """One clip of class ``label``: float32, shape ``(round(sr * duration_s),)``, peak 0.3-0.9."""
    if label not in CLASSES:
        raise ParameterError(f"unknown demo class {label!r}; choose from {sorted(CLASSES)}")
    t = np.arange(round(sr * duration_s), dtype=np.float64) / sr
    y = CLASSES[label](rng, t, sr)
    y = y / (np.max(np.abs(y)) + 1e-9) * rng.uniform(0.3, 0.9)
    y = y + rng.standard_normal(t.shape) * 10 ** (noise_db / 20)
    return np.clip(y, -1, 1).astype(np.float32)


COMPLETE_MARKER = ".melflow-demo.json"
# Written before the first clip: a folder with it is a demo corpus, complete or not.
STARTED_MARKER = ".melflow-demo-started"


class NotADemoCorpusError(ParameterError):
    """The folder already holds other files: demo clips would be mixed into someone's data."""


def generate_demo_corpus(
    *, root: str | Path, per_class: int, classes: tuple[str, ...] = tuple(CLASSES), **options: Any
) -> list[Path]:
    """:func:`ensure_demo_corpus`, then the paths of every clip of the requested size, in
    class-then-index order."""
    ensure_demo_corpus(root=root, per_class=per_class, classes=classes, **options)
    return [Path(root, label, _clip_name(label, i)) for label in classes for i in range(per_class)]


def _clip_name(label: str, i: int) -> str:
    return f"{label}_{i:05d}.wav"


def ensure_demo_corpus(
    *,
    root: str | Path,
    per_class: int,
    seed: int = 0,
    sr: int = 22050,
    min_duration_s: float = 0.6,
    max_duration_s: float = 1.4,
    classes: tuple[str, ...] = tuple(CLASSES),
) -> None:
    """Write ``per_class`` clips of each class to ``root/<class>/<class>_<i>.wav`` (16-bit PCM).

    Atomic per file and resumable: each clip is written to a unique temporary name and
    renamed, existing clips are left alone, and ``root/.melflow-demo.json`` records the
    arguments once every clip exists. A generation killed at any point is completed by the
    next call; a call whose corpus is complete only reads that marker.
    """
    if per_class < 1:
        raise ParameterError(f"per_class must be at least 1, got {per_class}")
    if not 0 < min_duration_s <= max_duration_s:
        raise ParameterError("need 0 < min_duration_s <= max_duration_s")
    arguments = {
        "per_class": per_class,
        "seed": seed,
        "sr": sr,
        "min_duration_s": min_duration_s,
        "max_duration_s": max_duration_s,
        "classes": list(classes),
    }
    marker = Path(root, COMPLETE_MARKER)
    if marker.exists() and json.loads(marker.read_text()) == arguments:
        return
    started = Path(root, STARTED_MARKER)
    if not (marker.exists() or started.exists()):
        if Path(root).is_dir() and any(Path(root).iterdir()):
            raise NotADemoCorpusError(
                f"{root} already holds files and is not a melflow demo corpus: no demo clips "
                "written there (set corpus.demo: null for your own corpus, or pick an empty folder)"
            )
        Path(root).mkdir(parents=True, exist_ok=True)
        started.touch()
    for class_index, label in enumerate(classes):
        Path(root, label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = Path(root, label, _clip_name(label, i))
            if not path.exists():
                _write_clip(
                    path,
                    seed=seed,
                    class_index=class_index,
                    i=i,
                    label=label,
                    sr=sr,
                    durations=(min_duration_s, max_duration_s),
                )
    write_bytes_atomic(str(marker), json.dumps(arguments).encode())


def _write_clip(
    path: Path,
    *,
    seed: int,
    class_index: int,
    i: int,
    label: str,
    sr: int,
    durations: tuple[float, float],
) -> None:
    rng = np.random.default_rng([seed, class_index, i])
    y = synthesize(label, rng=rng, sr=sr, duration_s=rng.uniform(*durations))
    # A unique name: two writers never share a temporary file, and a killed one leaves
    # only a ``.partial`` file that no audio listing picks up.
    tmp = path.with_name(f"{path.stem}.{uuid.uuid4().hex}.partial")
    sf.write(tmp, y, sr, subtype="PCM_16", format="WAV")
    tmp.replace(path)
