"""``melflow sweep`` on the small profile: a 2x2 grid with every figure, SIGKILL and resume,
and bad grids refused in one line before any work."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
from cli_processes import melflow_argv, start, wait_until
from conftest import small_config
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from melflow.config import PipelineConfig
from melflow.flows.cli import app
from melflow.flows.sweep import SweepRun, sweep_flow
from melflow.layout import Layout
from melflow.registry import list_versions, show, tracking_uri
from melflow.sweep.run import POINT_FILE
from melflow.sweep.table import DETERMINISTIC_COLUMNS

pytestmark = pytest.mark.integration

# Short and without the augmented store: what is measured here is the sweep, not learning.
SETTINGS = (
    "train.epochs=1",
    "train.num_threads=1",
    "augment.enabled=false",
    "sweep.latency_repeats=3",
)
GRID = ("train.model.arch=cnn,vgg", "train.model.channels=[4,8],[8,16]")


def _config(root: Path) -> PipelineConfig:
    return small_config(root, *SETTINGS)


def _sweep(cfg: PipelineConfig) -> SweepRun:
    return sweep_flow(cfg, list(GRID))


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clean")


@pytest.fixture(scope="module")
def uninterrupted(clean_root: Path, prefect_harness: None) -> SweepRun:
    return _sweep(_config(clean_root))


@pytest.mark.slow
def test_a_two_by_two_sweep_measures_every_figure(uninterrupted: SweepRun) -> None:
    frame = uninterrupted.frame
    assert len(frame) == 4 and len(uninterrupted.computed) == 4 and not uninterrupted.cached
    assert frame["train.model.arch"].tolist() == ["cnn", "cnn", "vgg", "vgg"]
    assert frame["train.model.channels"].tolist() == [[4, 8], [8, 16]] * 2
    assert not frame.isna().any().any()
    assert frame["accuracy_mean"].between(0, 1).all() and frame["macro_f1_mean"].between(0, 1).all()
    assert (frame["accuracy_std"] == 0).all() and (frame["folds"] == 1).all()  # one split
    assert (frame["params"] > 0).all() and (frame["macs"] > 0).all()
    # Wider networks cost more: the same family with twice the channels.
    for arch in ("cnn", "vgg"):
        rows = frame[frame["train.model.arch"] == arch]
        assert rows["params"].iloc[1] > rows["params"].iloc[0]
        assert rows["macs"].iloc[1] > rows["macs"].iloc[0]
    for column in ("latency_b1_ms", "latency_b64_ms", "train_s", "peak_train_mb"):
        assert (frame[column] > 0).all(), column
    assert frame["pareto"].any()

    files = uninterrupted.files
    csv = pd.read_csv(files.csv)
    assert csv["point"].tolist() == frame["point"].tolist()
    document = json.loads(Path(files.json).read_text())
    assert [p["point"] for p in document["points"]] == frame["point"].tolist()
    assert document["grid"] == ["train.model.arch", "train.model.channels"]
    assert Path(files.plot).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_mlflow_has_one_parent_run_and_a_nested_run_per_point_and_no_version(
    clean_root: Path, uninterrupted: SweepRun
) -> None:
    cfg = _config(clean_root)
    client = MlflowClient(tracking_uri=tracking_uri(cfg))
    (experiment,) = [e for e in client.search_experiments() if e.name == cfg.registry.experiment]
    parent = client.get_run(uninterrupted.run_id)
    assert parent.data.metrics["points"] == 4
    logged = {a.path for a in client.list_artifacts(uninterrupted.run_id, "sweep")}
    assert logged == {"sweep/sweep.csv", "sweep/sweep.json", "sweep/sweep.png"}
    children = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{uninterrupted.run_id}'",
    )
    frame = uninterrupted.frame.set_index("point")
    assert sorted(c.data.tags["melflow.sweep_point"] for c in children) == sorted(frame.index)
    for child in children:
        row = frame.loc[child.data.tags["melflow.sweep_point"]]
        assert child.data.params["train.model.arch"] == row["train.model.arch"]
        assert child.data.metrics["macs"] == row["macs"]
        assert child.data.metrics["accuracy_mean"] == pytest.approx(row["accuracy_mean"])
        assert child.data.tags["pareto"] == str(bool(row["pareto"]))
    assert list_versions(cfg=cfg).empty  # a sweep registers nothing
    # Rerun: every point cached, the same parent run (no duplicate).
    assert _sweep(cfg).run_id == uninterrupted.run_id


@pytest.mark.slow
def test_a_promoted_point_goes_through_the_gate(clean_root: Path, uninterrupted: SweepRun) -> None:
    cfg = _config(clean_root)
    point = str(uninterrupted.frame["point"].iloc[3])  # vgg, [8, 16]
    args = ["models", "register-sweep", point[:6], "-p", "small"]
    for item in (f"paths.data_dir={cfg.paths.data_dir}", f"corpus.root={cfg.corpus.root}"):
        args += ["-s", item]
    for item in SETTINGS:
        args += ["-s", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"point {point}" in result.output and "now champion" in result.output
    champion = show(cfg=cfg, ref="champion")
    assert champion.version == "1"
    params = MlflowClient(tracking_uri=tracking_uri(cfg)).get_run(champion.run_id).data.params
    assert (params["train.model.arch"], params["train.model.channels"]) == ("vgg", "[8, 16]")


@pytest.mark.slow
def test_sigkill_after_the_second_point_resumes_the_rest(
    tmp_path: Path, uninterrupted: SweepRun, prefect_harness: None
) -> None:
    cfg = _config(tmp_path)
    sets = [f"paths.data_dir={cfg.paths.data_dir}", f"corpus.root={cfg.corpus.root}", *SETTINGS]
    proc = start(melflow_argv("sweep", sets, *(a for g in GRID for a in ("-g", g))))
    points = Layout.of(cfg).sweeps() / "points"

    def two_points() -> bool:
        return len(list(points.glob(f"*/{POINT_FILE}"))) >= 2

    wait_until(proc, two_points, timeout=600, what="two finished points")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list(points.glob(f"*/{POINT_FILE}"))) == 2, "a third point finished first"

    resumed = _sweep(cfg)
    assert len(resumed.cached) == 2 and len(resumed.computed) == 2
    assert set(resumed.cached) == set(uninterrupted.frame["point"].iloc[:2])
    columns = list(DETERMINISTIC_COLUMNS)
    pd.testing.assert_frame_equal(resumed.frame[columns], uninterrupted.frame[columns])

    again = _sweep(cfg)
    assert len(again.cached) == 4 and not again.computed
    pd.testing.assert_frame_equal(again.frame, resumed.frame)


@pytest.mark.parametrize(
    "grid",
    [
        ["train.model.arch=cnn,transformer"],
        ["train.model.width=8,16"],
        ["train.model.arch="],
        ["features.n_mels=32,64"],
    ],
)
def test_a_bad_grid_exits_2_with_one_line_before_any_work(tmp_path: Path, grid: list[str]) -> None:
    cfg = _config(tmp_path)
    args = ["sweep", "-p", "small", "-s", f"paths.data_dir={cfg.paths.data_dir}"]
    for item in grid:
        args += ["-g", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "grid" in lines[0]
    assert not Path(cfg.paths.data_dir).exists()


def test_no_grid_at_all_is_an_empty_grid(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    result = CliRunner().invoke(app, ["sweep", "-p", "small", "-s", f"paths.data_dir={tmp_path}"])
    assert result.exit_code == 2 and "empty grid" in result.stderr
    assert not Path(cfg.paths.data_dir).exists()
