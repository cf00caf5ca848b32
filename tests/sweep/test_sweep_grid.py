"""Sweep grids: parsing ``--grid`` options, and every bad grid refused before any work."""

from __future__ import annotations

import pytest

from melflow.config import PipelineConfig, load_config
from melflow.errors import ConfigError
from melflow.sweep.grid import Axis, axes_from, grid_points, parse_axis, split_values


@pytest.fixture
def cfg() -> PipelineConfig:
    return load_config("small")


def test_values_split_on_commas_outside_brackets_and_quotes() -> None:
    assert split_values("cnn, vgg,resnet") == ["cnn", "vgg", "resnet"]
    assert split_values("[16,32,64],[32, 64, 128]") == ["[16,32,64]", "[32, 64, 128]"]
    assert split_values("{a: 1, b: 2},'x,y'") == ["{a: 1, b: 2}", "'x,y'"]


def test_axis_values_are_read_as_yaml() -> None:
    axis = parse_axis("train.model.channels=[16,32,64],[32,64,128]")
    assert axis == Axis("train.model.channels", ([16, 32, 64], [32, 64, 128]))
    assert parse_axis("train.lr = 0.01,0.1").values == (0.01, 0.1)


def test_points_are_every_combination_last_axis_fastest(cfg: PipelineConfig) -> None:
    axes = [
        parse_axis("train.model.arch=cnn,vgg,resnet"),
        parse_axis("train.model.channels=[8,16],[16,32]"),
    ]
    points = grid_points(cfg, axes)
    assert len(points) == 6
    assert [(p.cfg.train.model.arch, p.cfg.train.model.channels) for p in points[:3]] == [
        ("cnn", (8, 16)),
        ("cnn", (16, 32)),
        ("vgg", (8, 16)),
    ]
    assert points[5].overrides == ["train.model.arch=resnet", "train.model.channels=[16, 32]"]
    # Everything outside the grid is the profile's.
    assert all(p.cfg.train.epochs == cfg.train.epochs for p in points)
    assert all(p.cfg.features == cfg.features for p in points)


def test_the_profile_grid_is_used_without_options(cfg: PipelineConfig) -> None:
    swept = load_config("small", overrides=["sweep.grid={train.model.arch: [cnn, vgg]}"])
    assert axes_from(swept, []) == [Axis("train.model.arch", ("cnn", "vgg"))]
    assert axes_from(swept, ["train.lr=0.1,0.2"]) == [Axis("train.lr", (0.1, 0.2))]
    assert axes_from(cfg, []) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([], "empty grid"),
        (["train.model.arch="], "has no values"),
        (["train.model.arch=cnn,,vgg"], "empty value"),
        (["train.model.arch"], "must look like"),
        (["train.model.archh=cnn"], "unknown grid field 'train.model.archh': train.model has arch"),
        (["train.model.arch.x=1"], "train.model.arch is a value"),
        (["features.n_mels=32,64"], "not a train.* field"),
        (["train.model.arch=cnn,transformer"], "Input should be 'cnn', 'vgg' or 'resnet'"),
        (["train.lr=0.1,-1"], "train.lr=-1 is rejected: train.lr: Input should be greater"),
        (["train.model.channels=[8],[8]"], "lists [8] twice"),
        (["train.lr=0.1", "train.lr=0.2"], "given twice"),
        (["train.feature=logmel,mfcc"], "is not extracted"),
    ],
)
def test_a_bad_grid_fails_with_one_line_naming_the_problem(
    cfg: PipelineConfig, options: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        grid_points(cfg, axes_from(cfg, options))
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_points_keep_the_profiles_secrets() -> None:
    cfg = load_config("small", overrides=["paths.storage_options={key: id, secret: s3cr3t}"])
    (point,) = grid_points(cfg, [parse_axis("train.lr=0.01")])
    assert point.cfg.paths.storage_options == {"key": "id", "secret": "s3cr3t"}
