"""The demo corpus: seeded, atomic per clip, and completed after a kill at any point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
from conftest import small_config, tone

from melflow.demo_corpus import COMPLETE_MARKER, NotADemoCorpusError, generate_demo_corpus
from melflow.ingest import ingest_corpus

GENERATE = """
import sys
from melflow.demo_corpus import generate_demo_corpus
generate_demo_corpus(root=sys.argv[1], per_class=int(sys.argv[2]), sr=16000)
"""


def _wavs(root: Path) -> list[Path]:
    return sorted(root.rglob("*.wav"))


def test_a_generation_killed_midway_is_completed_by_the_next_ingest(tmp_path: Path) -> None:
    per_class = 60
    cfg = small_config(tmp_path, f"corpus.demo.per_class={per_class}")
    root = Path(cfg.corpus.root)
    generator = subprocess.Popen(
        [sys.executable, "-c", GENERATE, str(root), str(per_class)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    deadline = time.monotonic() + 120
    while len(_wavs(root)) < 20 and time.monotonic() < deadline and generator.poll() is None:
        time.sleep(0.02)
    generator.send_signal(signal.SIGKILL)
    generator.wait()
    killed_with = len(_wavs(root))
    assert 0 < killed_with < 6 * per_class and not (root / COMPLETE_MARKER).exists()

    result = ingest_corpus(cfg=cfg)
    assert (result.n_clips, result.n_ok) == (6 * per_class, 6 * per_class)
    assert len(_wavs(root)) == 6 * per_class and (root / COMPLETE_MARKER).exists()


def test_clips_are_byte_identical_whether_generated_at_once_or_resumed(tmp_path: Path) -> None:
    whole = generate_demo_corpus(root=tmp_path / "a", per_class=3, sr=8000)
    generate_demo_corpus(root=tmp_path / "b", per_class=1, sr=8000)
    (tmp_path / "b" / COMPLETE_MARKER).unlink()
    (tmp_path / "b" / "siren" / "siren_00000.wav").unlink()  # as if killed before it
    resumed = generate_demo_corpus(root=tmp_path / "b", per_class=3, sr=8000)
    assert [p.relative_to(tmp_path / "a") for p in whole] == [
        p.relative_to(tmp_path / "b") for p in resumed
    ]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(whole, resumed, strict=True))
    assert not list((tmp_path / "b").rglob("*.partial"))


def test_a_folder_of_someone_elses_files_never_gets_demo_clips(tmp_path: Path) -> None:
    corpus = tmp_path / "my_sounds"
    (corpus / "dog").mkdir(parents=True)
    sf.write(corpus / "dog" / "bark.wav", tone(300.0, sr=16000, duration_s=0.5), 16000)
    with pytest.raises(NotADemoCorpusError, match=r"corpus\.demo: null"):
        generate_demo_corpus(root=corpus, per_class=2)
    assert [p.name for p in corpus.rglob("*")] == ["dog", "bark.wav"]

    # A profile extending the demo profile, pointed at the user's folder: ingest takes the
    # folder as it is and writes nothing into it.
    cfg = small_config(tmp_path, f"corpus.root={corpus}", "audio.min_duration_s=0.1")
    assert cfg.corpus.demo is not None
    assert ingest_corpus(cfg=cfg).n_clips == 1
    assert [p.name for p in corpus.rglob("*")] == ["dog", "bark.wav"]
