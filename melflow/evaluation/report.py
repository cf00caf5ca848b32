"""One self-contained HTML page per evaluation: metrics, tables, figures and the worst clips.

Everything the page shows is inside the file (figures as PNG data URIs, clips as WAV data
URIs, inline CSS, no script), so it can be mailed, attached to an MLflow run or opened
from an object store without a server. Its Content-Security-Policy forbids every
external load, so a reference that slipped out would show up as a blocked request rather
than a page that silently depends on the network.
"""

from __future__ import annotations

import base64
import html
import io
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CSP = "default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'"
FIGURE_TITLES = {
    "confusion_matrix": "Confusion matrix",
    "training_curves": "Training curves",
    "spectrograms": "Spectrograms (one clip per class)",
}
HEADLINE = (
    ("accuracy", "accuracy"),
    ("macro_f1", "macro-F1"),
    ("macro_precision", "macro precision"),
    ("macro_recall", "macro recall"),
    ("weighted_f1", "weighted F1"),
)
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #1d2430; background: #fff; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #d6dbe3; }
.details { color: #5a6475; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; }
.card { border: 1px solid #d6dbe3; border-radius: 8px; padding: .7rem 1.1rem; min-width: 8rem; }
.card b { display: block; font-size: 1.7rem; }
table { border-collapse: collapse; } th, td { padding: .3rem .7rem; text-align: right; }
th:first-child, td:first-child, .t { text-align: left; }
tr:nth-child(even) { background: #f3f5f8; }
.bar { display: inline-block; height: .7rem; background: #3b7dd8; vertical-align: middle; }
.low { color: #b3261e; font-weight: 600; }
img { max-width: 100%; border: 1px solid #eef0f4; }
audio { height: 2rem; }
"""


@dataclass(frozen=True)
class ReportClip:
    """A misclassified clip shown with a player.

    Attributes
    ----------
    y : np.ndarray
        The waveform the model saw, float32 ``(n_samples,)`` at the report's ``sr`` Hz.
    confidence : float
        Probability the model gave its (wrong) prediction.
    p_true : float
        Probability it gave the true label.
    """

    clip_id: str
    label: str
    pred: str
    confidence: float
    p_true: float
    y: np.ndarray


def worst_misclassified(predictions: pd.DataFrame, *, n: int) -> pd.DataFrame:
    """The ``n`` misclassified rows the model was most sure of, most confident first.

    Parameters
    ----------
    predictions : DataFrame
        ``clip_id``, ``label``, ``pred`` and ``prob_<class>`` per clip, as evaluation writes.

    Returns
    -------
    DataFrame
        Those rows with ``confidence`` (probability of ``pred``) and ``p_true``
        (probability of ``label``) added; ties keep ``clip_id`` order so the pick is stable.
    """
    wrong = predictions[predictions["label"].astype(str) != predictions["pred"].astype(str)]
    probs = wrong.filter(like="prob_")

    def prob_of(names: pd.Series) -> np.ndarray:
        columns = probs.columns.get_indexer("prob_" + names.astype(str))
        return probs.to_numpy()[np.arange(len(probs)), columns].astype(np.float64)

    ranked = wrong.assign(confidence=prob_of(wrong["pred"]), p_true=prob_of(wrong["label"]))
    return ranked.sort_values(["confidence", "clip_id"], ascending=[False, True]).head(n)


def wav_bytes(y: np.ndarray, *, sr: int) -> bytes:
    """A mono 16-bit PCM WAV file of ``y`` (float, ``(n_samples,)``, clipped to [-1, 1])."""
    pcm = (np.clip(np.asarray(y, dtype=np.float64), -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sr)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _headline(report: Mapping[str, Any]) -> str:
    cards = [
        f'<div class="card">{_e(name)}<b>{float(report[key]):.3f}</b></div>'
        for key, name in HEADLINE
        if key in report
    ]
    cards.append(f'<div class="card">clips scored<b>{int(report["support"])}</b></div>')
    if report.get("n_unknown_label"):
        cards.append(
            f'<div class="card">unknown label<b>{int(report["n_unknown_label"])}</b></div>'
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def _per_class(report: Mapping[str, Any]) -> str:
    macro_f1 = float(report["macro_f1"])
    rows = []
    for name, scores in report["per_class"].items():
        f1 = float(scores["f1"])
        # Flag the classes that pull the macro average down, the first place to look.
        low = ' class="low"' if f1 < macro_f1 else ""
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{float(scores['precision']):.3f}</td>"
            f"<td>{float(scores['recall']):.3f}</td><td{low}>{f1:.3f}</td>"
            f'<td><span class="bar" style="width:{round(100 * f1)}px"></span></td>'
            f"<td>{int(scores['support'])}</td></tr>"
        )
    head = "<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th></th>"
    return f"<table>{head}<th>support</th></tr>{''.join(rows)}</table>"


def _figures(figures: Mapping[str, str]) -> str:
    parts = []
    for key, path in figures.items():
        title = FIGURE_TITLES.get(key, key.replace("_", " "))
        uri = _data_uri("image/png", Path(path).read_bytes())
        parts.append(f'<h2>{_e(title)}</h2><img alt="{_e(title)}" src="{uri}">')
    return "".join(parts)


def _worst(clips: Sequence[ReportClip], *, sr: int) -> str:
    if not clips:
        return "<p>No misclassified clip.</p>"
    rows = []
    for c in clips:
        audio = _data_uri("audio/wav", wav_bytes(c.y, sr=sr))
        rows.append(
            f'<tr><td>{_e(c.clip_id)}</td><td class="t">{_e(c.label)}</td>'
            f'<td class="t">{_e(c.pred)}</td>'
            f"<td>{c.confidence:.3f}</td><td>{c.p_true:.3f}</td>"
            f'<td><audio controls preload="metadata" src="{audio}"></audio></td></tr>'
        )
    head = (
        '<tr><th>clip</th><th class="t">true</th><th class="t">predicted</th>'
        "<th>p(predicted)</th><th>p(true)</th><th>listen</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def render_report(
    *,
    report: Mapping[str, Any],
    figures: Mapping[str, str],
    worst: Sequence[ReportClip],
    sr: int,
    title: str,
    details: Mapping[str, str] | None = None,
) -> str:
    """The evaluation as one self-contained HTML document.

    Parameters
    ----------
    report : mapping
        A :func:`~melflow.evaluation.metrics.classification_report` (plus ``split`` and
        ``n_unknown_label`` when evaluation added them).
    figures : mapping
        Figure name -> local PNG path, embedded in this order (``confusion_matrix``,
        ``training_curves`` and ``spectrograms`` get their own headings).
    worst : sequence of ReportClip
        Misclassified clips to list with a player (see :func:`worst_misclassified`).
    sr : int
        Sample rate of the clips' waveforms, Hz.
    title : str
        Page title.
    details : mapping, optional
        Short facts shown under the title (profile, split, bundle...).

    Returns
    -------
    str
        The HTML text; it loads nothing from outside itself.
    """
    facts = " · ".join(f"{_e(k)}: {_e(v)}" for k, v in (details or {}).items())
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{_e(title)}</h1><p class="details">{facts}</p>'
        f"<h2>Headline</h2>{_headline(report)}"
        f"<h2>Per class</h2>{_per_class(report)}"
        f"{_figures(figures)}"
        f"<h2>Most confident mistakes</h2>{_worst(worst, sr=sr)}"
        "</body></html>\n"
    )
