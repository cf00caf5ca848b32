"""Where profiles are found: the built-in ones, ``$MELFLOW_PROFILE_DIR``, relative ``extends``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from melflow.config import PROFILE_DIR_ENV, list_profiles, load_config
from melflow.errors import ConfigError


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_profile_dir_env_adds_folders_before_the_builtin_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "a" / "mine.yaml", "extends: small\nname: mine\nfeatures: {n_mels: 24}\n")
    _write(tmp_path / "b" / "small.yaml", "extends: default\nname: shadow\n")
    monkeypatch.setenv(PROFILE_DIR_ENV, os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    assert {"default", "small", "mine"} <= set(list_profiles())
    mine = load_config("mine")
    # "small" from mine.yaml resolves in the search path: b/small.yaml shadows the built-in.
    assert (mine.name, mine.features.n_mels) == ("mine", 24)
    assert load_config("small").name == "shadow"
    assert load_config("fsdd").name == "fsdd"  # the built-in ones are still there


def test_relative_extends_resolves_from_the_profile_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "team" / "base.yaml", "extends: small\nname: base\ntrain: {epochs: 3}\n")
    _write(tmp_path / "team" / "sibling.yaml", "extends: base\nname: sibling\n")
    child = _write(tmp_path / "team" / "exp" / "child.yaml", "extends: ../base.yaml\nname: child\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a relative extends never depends on the working directory
    monkeypatch.delenv(PROFILE_DIR_ENV, raising=False)
    cfg = load_config(str(child))
    assert (cfg.name, cfg.train.epochs, cfg.features.n_mels) == ("child", 3, 32)
    sibling = load_config(str(tmp_path / "team" / "sibling.yaml"))  # a name, found beside it
    assert (sibling.name, sibling.train.epochs) == ("sibling", 3)
    _write(tmp_path / "team" / "lost.yaml", "extends: ../nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere"):
        load_config(str(tmp_path / "team" / "lost.yaml"))
