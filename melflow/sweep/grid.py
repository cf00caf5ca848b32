"""Sweep grids: ``train.model.arch=cnn,vgg`` options -> axes -> validated points.

Every check happens here, before any work: the field must exist and be a ``train.*``
field (points share one feature and one augmented store, so nothing upstream of
training may vary), each value must pass the config's own validation, and so must every
combination. Errors are one line naming the field, the value and what is allowed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from melflow.config import PipelineConfig
from melflow.errors import ConfigError

SWEPT_SECTION = "train"
_OPEN, _CLOSE = "[{(", "]})"


@dataclass(frozen=True)
class Axis:
    """One swept field (dotted, e.g. ``train.model.arch``) and its values, in order."""

    field: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Point:
    """One combination of the grid: ``assignments`` in axis order and the validated config."""

    index: int
    assignments: tuple[tuple[str, Any], ...]
    cfg: PipelineConfig

    @property
    def overrides(self) -> list[str]:
        """The assignments as ``--set`` overrides (``train.model.channels=[16, 32]``)."""
        return [f"{field}={format_value(value)}" for field, value in self.assignments]


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def format_value(value: Any) -> str:
    """A value as YAML flow text, e.g. ``cnn`` or ``[16, 32, 64]``."""
    text: str = yaml.safe_dump(_plain(value), default_flow_style=True, width=10_000)
    return text.removesuffix("\n...\n").strip()


def split_values(raw: str) -> list[str]:
    """Split ``"[16,32],[32,64]"`` on the commas outside brackets and quotes."""
    items, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(raw):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
        elif char == "," and depth == 0:
            items.append(raw[start:i])
            start = i + 1
    items.append(raw[start:])
    return [item.strip() for item in items]


def parse_axis(option: str) -> Axis:
    """Parse one ``--grid FIELD=V1,V2,...`` option; each value is read as YAML.

    Raises
    ------
    ConfigError
        No ``=``, an empty field, or an empty value.
    """
    if "=" not in option:
        raise ConfigError(f"--grid {option!r} must look like train.FIELD=VALUE1,VALUE2")
    field, raw = (part.strip() for part in option.split("=", 1))
    if not field:
        raise ConfigError(f"--grid {option!r} has an empty field name")
    texts = split_values(raw)
    if texts == [""]:
        raise ConfigError(f"--grid {field}= has no values; give e.g. {field}=V1,V2")
    values = []
    for text in texts:
        if not text:
            raise ConfigError(f"--grid {field}={raw} has an empty value between commas")
        try:
            values.append(yaml.safe_load(text))
        except yaml.YAMLError:
            raise ConfigError(f"--grid {field}: value {text!r} is not valid YAML") from None
    return Axis(field, tuple(values))


def axes_from(cfg: PipelineConfig, options: Sequence[str]) -> list[Axis]:
    """The command line's ``--grid`` options, or else the profile's ``sweep.grid``."""
    if options:
        return [parse_axis(option) for option in options]
    return [Axis(field, tuple(values)) for field, values in cfg.sweep.grid.items()]


def _check_field(field: str) -> None:
    path = field.split(".")
    if path[0] != SWEPT_SECTION or len(path) < 2:
        raise ConfigError(
            f"grid field {field!r} is not a train.* field; a sweep varies training only "
            "(every point shares one feature and one augmented store)"
        )
    model: type[BaseModel] = PipelineConfig
    for depth, name in enumerate(path):
        fields = model.model_fields
        if name not in fields:
            where = ".".join(path[:depth])
            raise ConfigError(
                f"unknown grid field {field!r}: {where} has {', '.join(sorted(fields))}"
            )
        annotation = fields[name].annotation
        if depth < len(path) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                raise ConfigError(
                    f"unknown grid field {field!r}: {'.'.join(path[: depth + 1])} is a value"
                )
            model = annotation


def _assign(data: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    head, _, rest = field.partition(".")
    if not rest:
        return {**data, head: value}
    inner = data.get(head)
    return {**data, head: _assign(inner if isinstance(inner, dict) else {}, rest, value)}


def _field_value(cfg: PipelineConfig, field: str) -> Any:
    value: Any = cfg
    for name in field.split("."):
        value = getattr(value, name)
    return value


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def _validated(base: dict[str, Any], assignments: Sequence[tuple[str, Any]]) -> PipelineConfig:
    data = base
    for field, value in assignments:
        data = _assign(data, field, value)
    return PipelineConfig.model_validate(data)


def grid_points(cfg: PipelineConfig, axes: Sequence[Axis]) -> list[Point]:
    """Every combination of ``axes`` applied to ``cfg``, validated, in row-major order.

    Parameters
    ----------
    cfg : PipelineConfig
        The profile the points start from.
    axes : sequence of Axis
        At least one, each with at least one value; fields must be distinct.

    Returns
    -------
    list of Point
        ``prod(len(axis.values))`` points; the last axis varies fastest.

    Raises
    ------
    ConfigError
        An empty grid, an unknown or non-``train`` field, a field given twice, a repeated
        value, a value the config rejects (with what it allows), or a rejected combination.
    """
    if not axes:
        raise ConfigError(
            "empty grid: give --grid train.FIELD=V1,V2 (repeatable) or a sweep.grid section"
        )
    base = cfg.model_dump()  # python mode: JSON dumps redact secrets
    seen: set[str] = set()
    for axis in axes:
        _check_field(axis.field)
        if axis.field in seen:
            raise ConfigError(f"grid field {axis.field!r} is given twice; list its values once")
        seen.add(axis.field)
        if not axis.values:
            raise ConfigError(f"grid field {axis.field!r} has no values")
        normalized: list[Any] = []
        for value in axis.values:
            try:
                checked = _validated(base, [(axis.field, value)])
            except ValidationError as exc:
                raise ConfigError(
                    f"grid {axis.field}={format_value(value)} is rejected: {_one_line(exc)}"
                ) from None
            if _field_value(checked, axis.field) in normalized:  # [16, 32] == (16, 32)
                raise ConfigError(f"grid {axis.field} lists {format_value(value)} twice")
            normalized.append(_field_value(checked, axis.field))
    points = []
    fields = [axis.field for axis in axes]
    for index, combo in enumerate(itertools.product(*(axis.values for axis in axes))):
        assignments = tuple(zip(fields, combo, strict=True))
        try:
            point_cfg = _validated(base, assignments)
        except ValidationError as exc:
            given = ", ".join(f"{f}={format_value(v)}" for f, v in assignments)
            raise ConfigError(f"grid point {given} is rejected: {_one_line(exc)}") from None
        points.append(Point(index, assignments, point_cfg))
    return points
