"""Progress for logs and pipes: one line per training epoch, count lines every 10 %."""

from __future__ import annotations

import pytest

from melflow.flows import console
from melflow.tasks.train import epoch_line


def test_an_epoch_line_has_the_numbers_a_log_reader_wants() -> None:
    row = {"epoch": 3, "train_loss": 0.41234, "val_macro_f1": 0.87101, "lr": 0.003}
    assert epoch_line(row, epochs=10) == (
        "epoch 3/10: train loss 0.4123, val macro-F1 0.8710, lr 0.003"
    )
    no_val = {**row, "val_macro_f1": None}
    assert epoch_line(no_val, epochs=10) == "epoch 3/10: train loss 0.4123, lr 0.003"


def test_line_sink_prints_deciles_and_notes_not_counts_of_noted_stages(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    monkeypatch.setattr(console, "err_console", Console(stderr=True, force_terminal=False))
    sink = console._LineSink()
    for done in range(0, 101):
        sink("extract", done, 100)
    sink.note("train", "epoch 1/2: train loss 1.0000, lr 0.003")
    sink("train", 1, 2)
    sink.note("train", "early stopping after epoch 1: no gain for 1 epochs; keeping epoch 1")
    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if line.startswith("extract")] == [
        f"extract: {d}/100" for d in range(0, 101, 10)
    ]
    assert [line for line in lines if line.startswith("train")] == [
        "train: epoch 1/2: train loss 1.0000, lr 0.003",
        "train: early stopping after epoch 1: no gain for 1 epochs; keeping epoch 1",
    ]
