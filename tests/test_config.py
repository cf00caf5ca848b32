"""``melflow.config`` directly: profile inheritance, overrides, cross-field checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from melflow.config import (
    FeaturesConfig,
    apply_overrides,
    load_config,
    parse_override,
    without_storage_fields,
)
from melflow.errors import ConfigError


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_extends_merges_sections_deeply_child_wins(tmp_path: Path) -> None:
    base = _write(
        tmp_path / "base.yaml",
        "name: base\ncorpus: {root: c}\nfeatures: {n_mels: 32, n_fft: 512}\n",
    )
    child = _write(
        tmp_path / "child.yaml", f"extends: {base}\nname: child\nfeatures: {{n_mels: 16}}\n"
    )
    cfg = load_config(child)
    assert (cfg.name, cfg.features.n_mels, cfg.features.n_fft) == ("child", 16, 512)


def test_a_cycle_in_extends_is_refused_naming_the_profiles(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    _write(a, f"extends: {b}\ncorpus: {{root: c}}\n")
    _write(b, f"extends: {a}\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_config(a)
    _write(a, f"extends: {a}\ncorpus: {{root: c}}\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_config(a)


def test_overrides_are_yaml_typed_dotted_and_applied_last() -> None:
    assert parse_override("features.n_mels=128") == (["features", "n_mels"], 128)
    assert parse_override("features.fmax=null") == (["features", "fmax"], None)
    assert parse_override("corpus.root=a=b") == (["corpus", "root"], "a=b")
    merged = apply_overrides({"features": {"n_fft": 512}}, ["features.n_mels=8", "x.y.z=true"])
    assert merged == {"features": {"n_fft": 512, "n_mels": 8}, "x": {"y": {"z": True}}}
    cfg = load_config("small", overrides=["features.n_mels=24", "train.epochs=3"])
    assert (cfg.features.n_mels, cfg.train.epochs) == (24, 3)
    for bad in ("features.n_mels", "=3", "features.n_mels=[1"):
        with pytest.raises(ConfigError, match="override"):
            parse_override(bad)


def test_unknown_fields_and_bad_values_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"features\.n_mells"):
        load_config("small", overrides=["features.n_mells=8"])
    with pytest.raises(ConfigError, match=r"features\.n_mels.*got 0"):
        load_config("small", overrides=["features.n_mels=0"])
    # A 1-sample Hann window is a single zero: every feature would be silent.
    with pytest.raises(ConfigError, match=r"features\.win_length.*got 1"):
        load_config("small", overrides=["features.win_length=1"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["features.fmax=9000"], "Nyquist"),
        (["features.n_fft=65536"], "n_fft is longer"),
        (["train.feature=mfcc"], "train.feature='mfcc' is not extracted"),
        (["features.win_length=4096"], "win_length must not exceed"),
        (["features.fmin=500", "features.fmax=400"], "fmax must be above"),
    ],
)
def test_cross_field_checks_fail_before_any_work(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("small", overrides=overrides)


def test_storage_settings_are_not_part_of_the_feature_identity() -> None:
    a = FeaturesConfig()
    b = FeaturesConfig(batch_size=7, shard_chunks=4, compression_level=5)
    assert a.identity() == b.identity()
    assert "batch_size" not in a.identity() and "n_mels" in a.identity()
    assert FeaturesConfig(n_mels=16).identity() != a.identity()
    assert without_storage_fields(b.model_dump(mode="json")) == b.identity()
