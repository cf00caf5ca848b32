"""The MLflow registry against a real SQLite backend: logging, aliases, the promotion gate,
the raw-audio pyfunc, and the ``melflow models`` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from bundles import tiny_bundle
from conftest import small_config, tone
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from melflow.config import PipelineConfig
from melflow.errors import MelflowError
from melflow.evaluation.metrics import classification_report
from melflow.flows.cli_models import models_app
from melflow.models import load_bundle, predict_waveforms
from melflow.registry import (
    CHALLENGER,
    CHAMPION,
    RegisteredModel,
    compare,
    list_versions,
    load_champion,
    log_and_register,
    promote,
    promote_if_better,
    show,
    tracking_uri,
)

CLASSES = ["high", "low", "mid"]
FREQS = {"high": 3000.0, "low": 200.0, "mid": 900.0}
N_EVAL = 30
HISTORY = [
    {
        "epoch": e,
        "train_loss": 1.0 / (e + 1),
        "val_loss": 1.2 / (e + 1),
        "val_accuracy": 0.3 * e,
        "val_macro_f1": 0.25 * e,
        "lr": 1e-3,
    }
    for e in range(3)
]


@dataclass
class Env:
    root: Path
    cfg: PipelineConfig
    bundles: list[str]
    wavs: list[Path]

    def config(self, name: str, *overrides: str) -> PipelineConfig:
        return small_config(self.root, f"registry.model_name={name}", *overrides)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("registry")
    cfg = small_config(root)
    bundles = [str(root / f"bundle{seed}") for seed in range(6)]
    for seed, bundle in enumerate(bundles):
        tiny_bundle(cfg, bundle, classes=CLASSES, seed=seed)
    wavs = []
    for i, (label, freq) in enumerate(FREQS.items()):
        # Another rate and length than training, so the model's own resampling is exercised.
        path = root / "audio" / f"{label}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, tone(freq, sr=22050, duration_s=0.3 + 0.2 * i), 22050)
        wavs.append(path)
    return Env(root, cfg, bundles, wavs)


def eval_predictions(wrong: set[int], *, n: int = N_EVAL, prefix: str = "clip") -> pd.DataFrame:
    """Per-clip predictions on a fixed evaluation set, wrong exactly on the clips ``wrong``."""
    labels = [CLASSES[i % 3] for i in range(n)]
    preds = [CLASSES[(i + 1) % 3] if i in wrong else label for i, label in enumerate(labels)]
    return pd.DataFrame(
        {"clip_id": [f"{prefix}{i:03d}" for i in range(n)], "label": labels, "pred": preds}
    )


def register(
    env: Env, cfg: PipelineConfig, bundle: int, wrong: set[int], *, prefix: str = "clip"
) -> RegisteredModel:
    predictions = eval_predictions(wrong, prefix=prefix)
    report = classification_report(
        y_true=predictions["label"], y_pred=predictions["pred"], classes=CLASSES
    )
    return log_and_register(
        cfg=cfg,
        bundle_dir=env.bundles[bundle],
        history=HISTORY,
        report=report,
        artifacts=[],
        tags={"melflow.manifest_digest": "m1"},
        predictions=predictions,
    )


def aliases(cfg: PipelineConfig) -> dict[str, str]:
    client = MlflowClient(tracking_uri(cfg), tracking_uri(cfg))
    return {
        k: str(v) for k, v in client.get_registered_model(cfg.registry.model_name).aliases.items()
    }


def test_tracking_uri_defaults_to_sqlite_in_data_dir_and_env_wins(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(env.cfg) == f"sqlite:///{(env.root / 'data').resolve()}/mlflow.db"
    assert tracking_uri(env.config("x", "registry.tracking_uri=sqlite:////tmp/other.db")) == (
        "sqlite:////tmp/other.db"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking_uri(env.cfg) == "http://127.0.0.1:5999"


def test_log_and_register_records_run_and_is_idempotent(env: Env) -> None:
    cfg = env.config("lineage")
    figure = env.root / "confusion.png"
    figure.write_bytes(b"\x89PNG fake")
    predictions = eval_predictions({0, 1, 2})
    report = classification_report(
        y_true=predictions["label"], y_pred=predictions["pred"], classes=CLASSES
    )
    first = log_and_register(
        cfg=cfg,
        bundle_dir=env.bundles[0],
        history=HISTORY,
        report=report,
        artifacts=[str(figure)],
        tags={"melflow.manifest_digest": "abc"},
        predictions=predictions,
    )
    assert first.version == "1"
    assert first.metrics["test_accuracy"] == pytest.approx(27 / 30)
    assert first.metrics["test_macro_f1"] == pytest.approx(report["macro_f1"])
    assert first.metrics["test_f1_low"] == pytest.approx(report["per_class"]["low"]["f1"])
    assert aliases(cfg) == {CHALLENGER: "1"}

    client = MlflowClient(tracking_uri(cfg), tracking_uri(cfg))
    run = client.get_run(first.run_id)
    assert run.data.params["features.n_mels"] == str(cfg.features.n_mels)
    assert run.data.params["registry.model_name"] == "lineage"
    assert run.data.tags["melflow.manifest_digest"] == "abc"
    assert len(run.data.tags["melflow.bundle_digest"]) == 16
    val_loss = client.get_metric_history(first.run_id, "val_loss")
    assert [(m.step, m.value) for m in val_loss] == [
        (e, pytest.approx(1.2 / (e + 1))) for e in range(3)
    ]
    artifacts = {
        a.path
        for folder in ("figures", "reports", "predictions")
        for a in client.list_artifacts(first.run_id, folder)
    }
    assert artifacts == {
        "figures/confusion.png",
        "reports/report.json",
        "predictions/predictions.csv",
    }
    assert Path(client.get_run(first.run_id).info.artifact_uri).is_relative_to(
        (env.root / "data").resolve()
    )

    again = log_and_register(
        cfg=cfg,
        bundle_dir=env.bundles[0],
        history=HISTORY,
        report=report,
        artifacts=[],
        tags={},
        predictions=predictions,
    )
    assert (again.version, again.run_id, again.existing) == ("1", first.run_id, True)
    assert not first.existing


def test_gate_promotes_first_keeps_worse_as_challenger_and_promotes_better(env: Env) -> None:
    cfg = env.config("gate")
    v1 = register(env, cfg, 0, wrong=set(range(6)))
    first = promote_if_better(cfg=cfg, version=v1.version)
    assert first.promoted and first.champion_version is None and first.reason == "no champion yet"
    assert aliases(cfg) == {CHAMPION: "1"}

    v2 = register(env, cfg, 1, wrong=set(range(9)))  # worse
    worse = promote_if_better(cfg=cfg, version=CHALLENGER)
    assert not worse.promoted
    assert (worse.challenger_version, worse.champion_version) == ("2", "1")
    assert worse.challenger_value == pytest.approx(v2.metrics["test_macro_f1"])
    assert worse.champion_value == pytest.approx(v1.metrics["test_macro_f1"])
    assert worse.champion_value is not None and worse.challenger_value < worse.champion_value
    assert aliases(cfg) == {CHAMPION: "1", CHALLENGER: "2"}
    tags = show(cfg=cfg, ref="2").tags
    assert tags["melflow.promotion.promoted"] == "False"
    assert "does not beat" in tags["melflow.promotion.reason"]

    register(env, cfg, 2, wrong={0, 1})  # better
    better = promote_if_better(cfg=cfg, version="3")
    assert better.promoted and better.champion_version == "1" and better.mcnemar_p is None
    assert aliases(cfg) == {CHAMPION: "3"}  # the challenger alias moved on with it
    rerun = promote_if_better(cfg=cfg, version=CHAMPION)
    assert not rerun.promoted and "already the champion" in rerun.reason
    assert show(cfg=cfg, ref="3").tags["melflow.promotion.promoted"] == "True"
    client = MlflowClient(tracking_uri(cfg), tracking_uri(cfg))
    records = client.list_artifacts(v1.run_id, "promotion")
    decision = json.loads(Path(client.download_artifacts(v1.run_id, records[0].path)).read_text())
    assert decision["promoted"] is True and decision["kind"] == "gate"


def test_gate_respects_margin(env: Env) -> None:
    cfg = env.config("margin", "registry.margin=0.1")
    register(env, cfg, 0, wrong=set(range(6)))
    promote_if_better(cfg=cfg, version="1")
    small_gain = register(env, cfg, 1, wrong=set(range(4)))
    decision = promote_if_better(cfg=cfg, version=small_gain.version)
    gain = decision.challenger_value - decision.champion_value  # type: ignore[operator]
    assert 0 < gain < 0.1 and not decision.promoted and decision.margin == 0.1
    assert aliases(cfg)[CHAMPION] == "1"
    big_gain = register(env, cfg, 2, wrong=set())
    assert promote_if_better(cfg=cfg, version=big_gain.version).promoted


def test_gate_with_mcnemar_needs_a_significant_gain(env: Env) -> None:
    cfg = env.config("mcnemar", "registry.mcnemar=true")
    register(env, cfg, 0, wrong=set(range(10)))
    promote_if_better(cfg=cfg, version="1")
    # Better on 2 clips, worse on none: p = 0.5 for 2 discordant pairs.
    register(env, cfg, 1, wrong=set(range(8)))
    slight = promote_if_better(cfg=cfg, version="2")
    assert not slight.promoted and slight.mcnemar_p == pytest.approx(0.5)
    assert "not significant" in slight.reason
    # Better on all 10: p = 2 * 0.5**10; the caller's in-memory predictions are used as-is.
    register(env, cfg, 2, wrong=set())
    with pytest.raises(MelflowError, match="not on the set"):
        promote_if_better(cfg=cfg, version="3", eval_predictions=eval_predictions(set(), n=29))
    clear = promote_if_better(cfg=cfg, version="3", eval_predictions=eval_predictions(set()))
    assert clear.promoted and clear.mcnemar_p == pytest.approx(2 * 0.5**10)
    # The same gain without the test is promoted.
    plain = env.config("mcnemar-off")
    register(env, plain, 0, wrong=set(range(10)))
    promote_if_better(cfg=plain, version="1")
    register(env, plain, 1, wrong=set(range(8)))
    assert promote_if_better(cfg=plain, version="2").promoted


def test_gate_refuses_a_different_eval_set_and_manual_promote_overrides(env: Env) -> None:
    cfg = env.config("evalset")
    register(env, cfg, 0, wrong=set(range(6)))
    promote_if_better(cfg=cfg, version="1")
    register(env, cfg, 1, wrong=set(), prefix="other")
    decision = promote_if_better(cfg=cfg, version="2")
    assert not decision.promoted and "different set" in decision.reason
    promote(cfg=cfg, version="2", reason="new test split agreed with the team")
    assert aliases(cfg) == {CHAMPION: "2"}
    tags = show(cfg=cfg, ref=CHAMPION).tags
    assert tags["melflow.promotion.kind"] == "manual"
    assert tags["melflow.promotion.reason"] == "new test split agreed with the team"
    assert tags["melflow.promotion.champion_version"] == "1"
    with pytest.raises(MelflowError, match="no version '9'"):
        promote(cfg=cfg, version="9", reason="x")


def test_registered_pyfunc_predicts_raw_audio_like_the_bundle(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = env.config("pyfunc")
    register(env, cfg, 3, wrong=set())
    promote_if_better(cfg=cfg, version="1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri(cfg))
    model = mlflow.pyfunc.load_model(f"models:/{cfg.registry.model_name}@{CHAMPION}")

    bundle, meta = load_bundle(env.bundles[3])
    sr = cfg.audio.sr
    clips = [tone(f, sr=sr, duration_s=cfg.audio.duration_s) for f in FREQS.values()]
    expected = predict_waveforms(bundle, meta, np.stack(clips), sr=sr)
    prob_cols = [f"prob_{c}" for c in CLASSES]

    by_waveform = model.predict(
        pd.DataFrame({"waveform": [c.tolist() for c in clips], "sr": [sr] * 3})
    )
    assert list(by_waveform.columns) == ["label", *prob_cols, "error", "offset_s", "duration_s"]
    np.testing.assert_allclose(by_waveform[prob_cols].to_numpy(), expected, atol=1e-5)
    assert list(by_waveform["label"]) == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert (by_waveform["error"] == "").all()

    by_path = model.predict(pd.DataFrame({"path": [str(p) for p in env.wavs]}))
    from melflow.audio.io import load_clip

    decoded = np.stack(
        [load_clip(str(p), sr=sr, duration_s=cfg.audio.duration_s) for p in env.wavs]
    )
    np.testing.assert_allclose(
        by_path[prob_cols].to_numpy(), predict_waveforms(bundle, meta, decoded, sr=sr), atol=1e-5
    )
    np.testing.assert_allclose(by_path[prob_cols].sum(axis=1), 1.0, atol=1e-5)

    same = load_champion(cfg=cfg).predict(
        pd.DataFrame({"path": [str(env.wavs[0]), str(env.root / "nope.wav")]})
    )
    np.testing.assert_allclose(
        same.loc[0, prob_cols].to_numpy(float), by_path.loc[0, prob_cols].to_numpy(float), atol=1e-6
    )
    assert same.loc[1, "error"].startswith("missing") and pd.isna(same.loc[1, "label"])


_STANDALONE = """
import sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f)]  # hide installed melflow
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
import melflow
print(melflow.__file__)
print(model.predict(pd.DataFrame({"path": [sys.argv[2]]})).to_json(orient="records"))
"""


@pytest.mark.integration  # a fresh Python process
def test_registered_model_loads_without_melflow_installed(env: Env, tmp_path: Path) -> None:
    cfg = env.config("standalone")
    register(env, cfg, 4, wrong=set())
    uri = f"models:/{cfg.registry.model_name}/1"
    run = subprocess.run(
        [sys.executable, "-c", _STANDALONE, uri, str(env.wavs[1])],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(cfg)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    origin, rows = run.stdout.strip().splitlines()[-2:]
    assert "mlartifacts" in origin and "/code/melflow/" in origin  # the copy logged with the model
    bundle, meta = load_bundle(env.bundles[4])
    from melflow.audio.io import load_clip

    y = load_clip(str(env.wavs[1]), sr=cfg.audio.sr, duration_s=cfg.audio.duration_s)
    expected = predict_waveforms(bundle, meta, y[None], sr=cfg.audio.sr)[0]
    got = json.loads(rows)[0]
    np.testing.assert_allclose([got[f"prob_{c}"] for c in CLASSES], expected, atol=1e-5)


def test_list_show_compare(env: Env) -> None:
    cfg = env.config("inspect")
    v1 = register(env, cfg, 0, wrong=set(range(6)))
    v2 = register(env, cfg, 1, wrong={0})
    promote_if_better(cfg=cfg, version="1")
    versions = list_versions(cfg=cfg)
    assert list(versions["version"]) == ["2", "1"]
    assert list(versions["aliases"]) == [CHALLENGER, CHAMPION]
    assert versions.loc[1, "macro_f1"] == pytest.approx(v1.metrics["test_macro_f1"])

    info = show(cfg=cfg, ref=CHALLENGER)
    assert info.version == "2" and info.aliases == [CHALLENGER] and info.classes == CLASSES
    assert info.metrics["accuracy"] == pytest.approx(29 / 30)
    assert info.features["n_mels"] == str(cfg.features.n_mels)

    table = compare(cfg=cfg, a=CHAMPION, b=CHALLENGER)
    assert list(table.columns) == ["v1", "v2", "delta"]
    assert table.loc["macro_f1", "delta"] == pytest.approx(
        v2.metrics["test_macro_f1"] - v1.metrics["test_macro_f1"]
    )
    assert list(table.index[-3:]) == [f"f1_{c}" for c in CLASSES]
    assert table.attrs["same_eval_set"] is True
    with pytest.raises(MelflowError, match="both version 1"):
        compare(cfg=cfg, a="1", b=CHAMPION)
    assert list_versions(cfg=env.config("nothing-here")).empty


def test_models_cli(env: Env) -> None:
    cfg = env.config("cli")
    register(env, cfg, 0, wrong=set(range(6)))
    register(env, cfg, 1, wrong={0})
    base = [
        "-p",
        "small",
        "-s",
        f"paths.data_dir={env.root / 'data'}",
        "-s",
        "registry.model_name=cli",
    ]
    runner = CliRunner()

    listed = runner.invoke(models_app, ["list", *base])
    assert listed.exit_code == 0, listed.output
    assert "challenger" in listed.output and "0.8" in listed.output

    promoted = runner.invoke(models_app, ["promote", "1", "--reason", "baseline", *base])
    assert promoted.exit_code == 0 and "v1 of cli is now champion" in promoted.output
    shown = runner.invoke(models_app, ["show", "champion", *base])
    assert shown.exit_code == 0 and "baseline" in shown.output

    compared = runner.invoke(models_app, ["compare", "1", "2", *base])
    assert compared.exit_code == 0, compared.output
    assert "per-class F1" in compared.output and "+0." in compared.output

    as_json = runner.invoke(models_app, ["list", "--json", *base])
    versions = json.loads(as_json.stdout)["versions"]
    assert [(v["version"], v["aliases"]) for v in versions] == [
        ("2", "challenger"),
        ("1", "champion"),
    ]
    shown_json = json.loads(runner.invoke(models_app, ["show", "1", "--json", *base]).stdout)
    assert shown_json["version"] == "1" and shown_json["aliases"] == ["champion"]
    compared_json = json.loads(
        runner.invoke(models_app, ["compare", "1", "2", "--json", *base]).stdout
    )
    deltas = compared_json["metrics"]
    assert compared_json["a"] != compared_json["b"] and deltas["accuracy"]["delta"] > 0

    missing = runner.invoke(models_app, ["show", "7", *base])
    assert missing.exit_code == 2 and "has no version '7'" in missing.output
    assert "Traceback" not in missing.output
    bad = runner.invoke(models_app, ["list", "-p", "small", "-s", "registry.margin=5"])
    assert bad.exit_code == 2 and "registry.margin" in bad.output
    by_alias = runner.invoke(models_app, ["promote", "challenger", "--reason", "agreed", *base])
    assert by_alias.exit_code == 0, by_alias.output  # the alias moved: success all the same
    assert "v2 of cli is now champion" in by_alias.output
