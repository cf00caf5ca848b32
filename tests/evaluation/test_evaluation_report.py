"""The HTML report: the worst clips it picks, its WAVs, self-containment and how it renders."""

from __future__ import annotations

import io
import wave
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
from browser import render
from conftest import tone

from melflow.config import FeaturesConfig
from melflow.evaluation.figures import confusion_matrix_figure, spectrogram_panel_figure
from melflow.evaluation.metrics import classification_report
from melflow.evaluation.report import (
    CSP,
    ReportClip,
    render_report,
    wav_bytes,
    worst_misclassified,
)

SR = 8000
CLASSES = ["low", "mid", "<b>&high"]  # a name that must be escaped, not interpreted
# Std of a screenshot's grey levels below which it counts as blank (a white page with at
# most a broken-image icon is ~0.007; the report is ~0.3).
BLANK_STD = 0.05


class _Resources(HTMLParser):
    """Every ``src``/``href`` and tag name of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href")]


def _predictions() -> pd.DataFrame:
    probs = np.array(
        [
            [0.9, 0.05, 0.05],  # low -> low
            [0.2, 0.7, 0.1],  # low -> mid (0.7)
            [0.1, 0.1, 0.8],  # mid -> <b>&high (0.8)
            [0.1, 0.85, 0.05],  # mid -> mid
            [0.5, 0.1, 0.4],  # <b>&high -> low (0.5)
            [0.2, 0.1, 0.7],  # <b>&high -> <b>&high
        ]
    )
    labels = ["low", "low", "mid", "mid", "<b>&high", "<b>&high"]
    return pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(6)],
            "label": labels,
            "pred": [CLASSES[i] for i in probs.argmax(axis=1)],
            **{f"prob_{c}": probs[:, i] for i, c in enumerate(CLASSES)},
        }
    )


def test_worst_misclassified_are_the_most_confident_mistakes() -> None:
    worst = worst_misclassified(_predictions(), n=2)
    assert worst["clip_id"].tolist() == ["c2", "c1"]
    np.testing.assert_allclose(worst["confidence"], [0.8, 0.7])
    np.testing.assert_allclose(worst["p_true"], [0.1, 0.2])
    assert worst_misclassified(_predictions(), n=10)["clip_id"].tolist() == ["c2", "c1", "c4"]
    right = _predictions().assign(pred=lambda d: d["label"])
    assert worst_misclassified(right, n=3).empty


def test_wav_bytes_round_trip_within_one_lsb() -> None:
    y = tone(440.0, sr=SR, duration_s=0.25)
    y[:3] = [1.5, -1.5, 0.0]  # out of range: clipped, not wrapped around
    with wave.open(io.BytesIO(wav_bytes(y, sr=SR))) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, SR)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert len(pcm) == len(y)
    assert pcm[:3].tolist() == [32767, -32767, 0]
    np.testing.assert_allclose(pcm[3:] / 32767, y[3:], atol=1 / 32767)


def _page(tmp_path: Path) -> str:
    predictions = _predictions()
    report = classification_report(
        y_true=predictions["label"], y_pred=predictions["pred"], classes=CLASSES
    )
    report.update(split="test", n_unknown_label=2)
    freqs = (300.0, 900.0, 2500.0)
    examples = [(c, tone(f, sr=SR, duration_s=0.5)) for c, f in zip(CLASSES, freqs, strict=True)]
    figures = {
        "confusion_matrix": confusion_matrix_figure(
            report["confusion_matrix"], classes=CLASSES, path=tmp_path / "cm.png"
        ),
        "spectrograms": spectrogram_panel_figure(
            examples,
            sr=SR,
            features=FeaturesConfig(n_fft=256, hop_length=128, n_mels=32),
            path=tmp_path / "spec.png",
        ),
    }
    worst = [
        ReportClip(
            clip_id=str(r.clip_id),
            label=str(r.label),
            pred=str(r.pred),
            confidence=float(r.confidence),
            p_true=float(r.p_true),
            y=tone(500.0, sr=SR, duration_s=0.5),
        )
        for r in worst_misclassified(predictions, n=8).itertuples()
    ]
    return render_report(
        report=report,
        figures=figures,
        worst=worst,
        sr=SR,
        title="small: evaluation <test>",
        details={"profile": "small", "split": "test"},
    )


def test_report_is_self_contained_and_escaped(tmp_path: Path) -> None:
    page = _page(tmp_path)
    parsed = _Resources()
    parsed.feed(page)
    assert parsed.urls and all(u.startswith("data:") for u in parsed.urls)
    assert sum(u.startswith("data:image/png;base64,") for u in parsed.urls) == 2
    assert sum(u.startswith("data:audio/wav;base64,") for u in parsed.urls) == 3
    assert parsed.tags.count("audio") == 3 and "script" not in parsed.tags
    assert f'content="{CSP}"' in page
    assert "&lt;b&gt;&amp;high" in page and "<b>&high" not in page
    assert "small: evaluation &lt;test&gt;" in page
    # headline and per-class numbers: accuracy 3/6, the low class recall 1/2
    assert "accuracy<b>0.500</b>" in page and "unknown label<b>2</b>" in page
    assert "<tr><td>low</td><td>0.500</td><td>0.500</td>" in page


def test_report_renders_in_chromium_without_console_messages(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(_page(tmp_path), encoding="utf-8")
    shown = render(path, workdir=tmp_path)
    assert shown.console == []
    assert shown.pixels[..., :3].std() > BLANK_STD


def test_chromium_check_sees_external_loads_and_blank_pages(tmp_path: Path) -> None:
    """The two checks above can fail: a blocked external image and a blank page are caught."""
    path = tmp_path / "bad.html"
    path.write_text(
        f'<!doctype html><meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<body><img src="http://127.0.0.1:9/x.png"></body>'
    )
    shown = render(path, workdir=tmp_path, height=400)
    assert any("Content Security Policy" in m for m in shown.console)
    assert shown.pixels[..., :3].std() < BLANK_STD
