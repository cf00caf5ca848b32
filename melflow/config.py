"""Pipeline configuration: pydantic models for every stage, loaded from layered YAML profiles.

A profile is a YAML file in ``pipeline_config/`` (or a folder of ``$MELFLOW_PROFILE_DIR``).
It may name a parent with ``extends:`` (a name, or a path relative to the profile's own
folder); the child is deep-merged over the parent. Command-line overrides
(``features.n_mels=128``) are applied last. Validation happens once, before any work, and
every error names the dotted field, the value given and what is allowed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from melflow import secrets
from melflow.errors import ConfigError

PROFILE_DIR = Path(__file__).resolve().parent.parent / "pipeline_config"
PROFILE_DIR_ENV = "MELFLOW_PROFILE_DIR"


class _Section(BaseModel):
    """Base of every section: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_serializer(mode="wrap", when_used="json")
    def _redacted(self, handler: SerializerFunctionWrapHandler) -> Any:
        # JSON dumps leave the process (MLflow params, Prefect parameters, digests): no
        # secret may be in them. Python-mode dumps and pickles keep the real values.
        return secrets.redact(handler(self))


class PathsConfig(_Section):
    """Where stage outputs live. Relative paths resolve against the working directory."""

    data_dir: str = Field("data", description="Root of manifests, stores, reports (path or URL).")
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for URLs, e.g. {client_kwargs: {endpoint_url: ...}}.",
    )


class DemoConfig(_Section):
    """The built-in synthetic corpus, generated on demand into ``corpus.root``."""

    per_class: int = Field(40, ge=1, le=100_000)
    seed: int = 0
    sr: int = Field(22050, ge=4000, le=192_000)
    min_duration_s: float = Field(0.6, gt=0)
    max_duration_s: float = Field(1.4, gt=0)


class CorpusConfig(_Section):
    """How to find clips, their labels, groups and splits."""

    root: str = Field(..., description="Corpus folder or fsspec URL.")
    label_source: Literal["folder", "manifest", "regex"] = "folder"
    manifest: str | None = Field(None, description="CSV/Parquet relative to root (manifest).")
    path_column: str = "path"
    label_column: str = "label"
    group_column: str | None = None
    filename_regex: str | None = Field(
        None, description="Regex with named groups 'label' (and optional 'group') on the stem."
    )
    extensions: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3")
    split_source: Literal["column", "fold", "random"] = "random"
    split_column: str = "split"
    fold_column: str = "fold"
    test_folds: tuple[int, ...] = (1,)
    val_folds: tuple[int, ...] = ()
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0
    demo: DemoConfig | None = None

    @model_validator(mode="after")
    def _check_sources(self) -> CorpusConfig:
        if self.label_source == "manifest" and not self.manifest:
            raise ValueError(
                "label_source 'manifest' needs corpus.manifest (a CSV or Parquet file)"
            )
        if self.label_source == "regex" and "(?P<label>" not in (self.filename_regex or ""):
            raise ValueError(
                "label_source 'regex' needs corpus.filename_regex with a named group "
                "(?P<label>...), e.g. '^(?P<label>\\d+)_(?P<group>[a-z]+)_\\d+$'"
            )
        if self.filename_regex is not None:
            try:
                re.compile(self.filename_regex)
            except re.error as exc:
                raise ValueError(f"corpus.filename_regex is not a valid regex: {exc}") from None
        if self.split_source != "random" and self.label_source != "manifest":
            raise ValueError(
                f"split_source {self.split_source!r} reads corpus.{self.split_source}_column from "
                "the manifest file; use label_source 'manifest' or split_source 'random'"
            )
        if self.test_fraction + self.val_fraction >= 1.0:
            raise ValueError("corpus.test_fraction + corpus.val_fraction must be below 1")
        return self


class SegmentConfig(_Section):
    """Windows cut from files longer than ``audio.max_duration_s`` (see docs/formats.md)."""

    window_s: float = Field(..., gt=0, le=600, description="Window length in seconds.")
    hop_s: float | None = Field(
        None, gt=0, description="Seconds between window starts; default window_s (no overlap)."
    )

    @property
    def hop(self) -> float:
        """The hop in seconds (``window_s`` when not set)."""
        return self.window_s if self.hop_s is None else self.hop_s


class AudioConfig(_Section):
    """Decoding: every clip becomes mono float32 at ``sr``, padded/cropped to ``duration_s``."""

    sr: int = Field(22050, ge=1000, le=192_000, description="Target sample rate in Hz.")
    duration_s: float = Field(1.0, gt=0, le=600, description="Fixed clip length after pad/crop.")
    min_duration_s: float = Field(0.05, ge=0, description="Shorter source clips are quarantined.")
    max_duration_s: float = Field(
        60.0, gt=0, description="Longer files: quarantined, or windowed (segment)."
    )
    silence_db: float = Field(
        -60.0, le=0, description="Clips whose peak is below this dBFS are quarantined as silent."
    )
    crop: Literal["start", "center"] = "start"
    segment: SegmentConfig | None = Field(
        None, description="Cut longer-than-max_duration_s files into windows (off by default)."
    )

    @model_validator(mode="after")
    def _check_limits(self) -> AudioConfig:
        if self.min_duration_s >= self.max_duration_s:
            raise ValueError("audio.min_duration_s must be below audio.max_duration_s")
        if self.segment is not None and self.segment.window_s > self.max_duration_s:
            raise ValueError(
                f"audio.segment.window_s={self.segment.window_s:g} must not exceed "
                f"audio.max_duration_s={self.max_duration_s:g}: files up to max_duration_s "
                "are kept whole and only longer ones are cut into windows"
            )
        return self


FeatureKind = Literal["logmel", "mfcc", "stft"]


def without_storage_fields(features: dict[str, Any]) -> dict[str, Any]:
    """A dumped ``features`` section without its storage settings (see :class:`FeaturesConfig`)."""
    return {k: v for k, v in features.items() if k not in FeaturesConfig.STORAGE_FIELDS}


class FeaturesConfig(_Section):
    """Spectral features; units: samples for sizes, Hz for frequencies, dB for ``top_db``."""

    kinds: tuple[FeatureKind, ...] = ("logmel",)
    n_fft: int = Field(1024, ge=16, le=65536)
    hop_length: int = Field(512, ge=1)
    win_length: int | None = Field(None, ge=2, description="Hann window length (default n_fft).")
    n_mels: int = Field(64, ge=1, le=512)
    n_mfcc: int = Field(20, ge=1, le=128)
    fmin: float = Field(0.0, ge=0)
    fmax: float | None = None
    power: float = Field(2.0, gt=0)
    top_db: float | None = Field(80.0, gt=0)
    dtype: Literal["float32", "float16"] = "float32"
    batch_size: int = Field(
        64, ge=1, le=4096, description="Rows per Zarr chunk (what reads fetch)."
    )
    shard_chunks: int = Field(
        1,
        ge=1,
        le=1024,
        description="Chunks per stored object (a Zarr v3 shard); one batch fills one shard. "
        "1 = one object per chunk; raise it on object storage to cut PUTs and LIST entries.",
    )
    compression_level: int = Field(1, ge=0, le=9)

    # How a store is chunked and compressed, not what it holds: they apply when a store is
    # created and never change a feature value, a digest or the model that reads them.
    STORAGE_FIELDS: ClassVar[tuple[str, ...]] = ("batch_size", "shard_chunks", "compression_level")

    def identity(self) -> dict[str, Any]:
        """The settings that define feature values (every field but :attr:`STORAGE_FIELDS`)."""
        return without_storage_fields(self.model_dump(mode="json"))

    @model_validator(mode="after")
    def _check_sizes(self) -> FeaturesConfig:
        if self.win_length is not None and self.win_length > self.n_fft:
            raise ValueError("features.win_length must not exceed features.n_fft")
        if self.fmax is not None and self.fmax <= self.fmin:
            raise ValueError("features.fmax must be above features.fmin")
        if not self.kinds:
            raise ValueError("features.kinds needs at least one of logmel, mfcc, stft")
        return self


class DaskConfig(_Section):
    """Where the extraction and augmentation tasks run."""

    address: str | None = Field(None, description="tcp://host:port of a running scheduler.")
    n_workers: int = Field(2, ge=1, le=256)
    threads_per_worker: int = Field(1, ge=1, le=64)
    memory_limit: str = "4GiB"


class RangeOp(_Section):
    """An augmentation op drawn with probability ``p`` uniformly from ``[low, high]``."""

    p: float = Field(0.5, ge=0.0, le=1.0)
    low: float
    high: float

    @model_validator(mode="after")
    def _check_range(self) -> RangeOp:
        if self.low > self.high:
            raise ValueError(
                f"low={self.low} must not exceed high={self.high} (drawn uniformly in [low, high])"
            )
        return self


class TimeStretchOp(RangeOp):
    """Rate > 1 speeds up (shorter), < 1 slows down; the variant is pad/cropped back."""

    low: float = Field(0.8, gt=0.0, le=4.0, description="Smallest stretch rate (> 0).")
    high: float = Field(1.25, gt=0.0, le=4.0, description="Largest stretch rate (<= 4).")


class PitchShiftOp(RangeOp):
    """Shift in semitones."""

    low: float = Field(-2.0, ge=-24.0, le=24.0, description="Semitones, -24 .. 24.")
    high: float = Field(2.0, ge=-24.0, le=24.0, description="Semitones, -24 .. 24.")


class NoiseOp(RangeOp):
    """Additive noise at an SNR in dB drawn from ``[low, high]``."""

    low: float = Field(10.0, ge=-20.0, le=100.0, description="Lowest SNR in dB, -20 .. 100.")
    high: float = Field(30.0, ge=-20.0, le=100.0, description="Highest SNR in dB, -20 .. 100.")
    kind: Literal["white", "pink", "folder"] = "white"
    folder: str | None = Field(
        None, description="Background-noise clips (folder or URL, recursive) for kind='folder'."
    )

    @model_validator(mode="after")
    def _check_folder(self) -> NoiseOp:
        if self.kind == "folder" and not self.folder:
            raise ValueError("noise kind 'folder' needs augment.noise.folder")
        return self


class GainOp(RangeOp):
    """Gain in dB."""

    low: float = Field(-6.0, ge=-60.0, le=20.0, description="dB, -60 .. 20.")
    high: float = Field(6.0, ge=-60.0, le=20.0, description="dB, -60 .. 20.")


class ShiftOp(RangeOp):
    """Time shift as a fraction of the clip length (negative = earlier)."""

    low: float = Field(-0.2, ge=-1.0, le=1.0, description="Fraction of the clip, -1 .. 1.")
    high: float = Field(0.2, ge=-1.0, le=1.0, description="Fraction of the clip, -1 .. 1.")
    mode: Literal["circular", "zero"] = "circular"


class AugmentConfig(_Section):
    """Offline augmentation of the train split into a second feature store."""

    enabled: bool = True
    variants_per_clip: int = Field(2, ge=1, le=100, description="Augmented rows per train clip.")
    seed: int = Field(0, description="With the clip and variant index, seeds every variant.")
    time_stretch: TimeStretchOp = TimeStretchOp()
    pitch_shift: PitchShiftOp = PitchShiftOp()
    noise: NoiseOp = NoiseOp()
    gain: GainOp = GainOp(p=0.3)
    shift: ShiftOp = ShiftOp(p=0.3)

    @model_validator(mode="after")
    def _check_some_op(self) -> AugmentConfig:
        ops = (self.time_stretch, self.pitch_shift, self.noise, self.gain, self.shift)
        if self.enabled and not any(op.p > 0 for op in ops):
            raise ValueError(
                "every op has p=0: raise one of "
                "augment.{time_stretch,pitch_shift,noise,gain,shift}.p or set augment.enabled=false"
            )
        return self


class ModelConfig(_Section):
    """CNN architecture; ``channels`` gives one conv block (or residual stage) per entry."""

    arch: Literal["cnn", "vgg", "resnet"] = "cnn"
    channels: tuple[int, ...] = Field((16, 32, 64), min_length=1, max_length=8)
    kernel_size: Literal[3, 5] = 3
    convs_per_block: int | None = Field(
        None,
        ge=1,
        le=4,
        description="Convs per block (cnn, vgg) or residual blocks per stage (resnet); "
        "None = the family's default (cnn 1, vgg 2, resnet 1).",
    )
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    hidden: int = Field(128, ge=0, le=8192, description="FC width before the output; 0 = none.")
    pool: tuple[int, int] = Field(
        (4, 4),
        description="(bins, frames) after the adaptive average pooling before the head; "
        "a few bands and time steps keep where and when energy lies.",
    )
    crop_frames: int | None = Field(
        None,
        ge=1,
        description="Frames the network sees: training draws one random crop of this length "
        "per clip and epoch, inference averages the logits of test_crops evenly spaced crops; "
        "None = the whole clip.",
    )
    test_crops: int = Field(3, ge=1, le=64, description="Crops averaged at inference.")

    @model_validator(mode="after")
    def _check_widths(self) -> ModelConfig:
        if min(self.channels) < 1 or min(self.pool) < 1:
            raise ValueError("model.channels and model.pool must be positive")
        return self


class SpecAugmentConfig(_Section):
    """Online time/frequency masking on training batches."""

    enabled: bool = False
    freq_mask: int = Field(8, ge=0)
    time_mask: int = Field(8, ge=0)
    n_masks: int = Field(1, ge=0, le=10)


class MixupConfig(_Section):
    """Online mixup on training batches; ``alpha`` of the Beta distribution."""

    enabled: bool = False
    alpha: float = Field(0.2, gt=0.0, le=10.0)


class TrainConfig(_Section):
    """Optimisation of the classifier on the clean (+ augmented) train split."""

    feature: FeatureKind = "logmel"
    model: ModelConfig = ModelConfig()
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    scheduler: Literal["none", "cosine", "step", "plateau"] = "cosine"
    step_size: int = Field(10, ge=1, description="Epochs between LR drops (step).")
    gamma: float = Field(0.5, gt=0.0, le=1.0, description="LR factor per drop (step, plateau).")
    lr_patience: int = Field(2, ge=0, description="Epochs without val macro-F1 gain (plateau).")
    epochs: int = Field(20, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, le=8192)
    window_chunks: int = Field(
        32,
        ge=1,
        le=4096,
        description="Store chunks read and shuffled together; bounds memory to this many chunks.",
    )
    patience: int = Field(8, ge=0, description="Early stopping on val macro-F1; 0 = off.")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    class_weights: bool = False
    use_augmented: bool = True
    spec_augment: SpecAugmentConfig = SpecAugmentConfig()
    mixup: MixupConfig = MixupConfig()
    warmup_epochs: int = Field(
        0, ge=0, description="Epochs of linear LR warm-up before the schedule (step-wise)."
    )
    ema_decay: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Per-step decay of an exponential moving average of the weights; the "
        "average is what is validated and saved. 0 = off.",
    )
    seed: int = 0
    num_threads: int = Field(2, ge=1, le=256)
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="auto = CUDA when available, else CPU."
    )
    mixed_precision: bool = Field(True, description="float16 autocast + grad scaling on CUDA.")
    init_from_champion: bool = False

    @model_validator(mode="after")
    def _check_schedule(self) -> TrainConfig:
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"train.warmup_epochs={self.warmup_epochs} must be below train.epochs={self.epochs}"
            )
        return self


class CvConfig(_Section):
    """Cross-validation folds (``melflow cv``); see :mod:`melflow.cv`."""

    folds_from: Literal["column", "path_regex", "kfold"] = Field(
        "column",
        description="column: the manifest's fold column (corpus.fold_column); path_regex: "
        "(?P<fold>...) of cv.fold_regex in the corpus-relative path; kfold: cv.k stratified, "
        "grouped folds.",
    )
    fold_regex: str | None = Field(None, description=r"For path_regex, e.g. '^fold(?P<fold>\d+)/'.")
    k: int = Field(5, ge=2, le=100, description="Folds of kfold.")
    only: tuple[str, ...] = Field((), description="Run only these folds (names); () = all.")
    val_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="Stratified, grouped share of train groups for val."
    )
    seed: int = 0

    @model_validator(mode="after")
    def _check_regex(self) -> CvConfig:
        if self.folds_from == "path_regex":
            if "(?P<fold>" not in (self.fold_regex or ""):
                raise ValueError(
                    "cv.folds_from 'path_regex' needs cv.fold_regex with a named group "
                    r"(?P<fold>...), e.g. '^fold(?P<fold>\d+)/'"
                )
            try:
                re.compile(str(self.fold_regex))
            except re.error as exc:
                raise ValueError(f"cv.fold_regex is not a valid regex: {exc}") from None
        return self


class RegistryConfig(_Section):
    """MLflow tracking and the promotion gate (see :mod:`melflow.promotion`)."""

    tracking_uri: str | None = Field(
        None, description="Default: sqlite:///<data_dir>/mlflow.db; MLFLOW_TRACKING_URI wins."
    )
    experiment: str = Field("melflow", min_length=1)
    model_name: str = Field("melflow-classifier", pattern=r"^[A-Za-z0-9][\w.\-]*$")
    metric: Literal["macro_f1", "accuracy", "weighted_f1"] = Field(
        "macro_f1", description="Test metric a challenger must improve to become champion."
    )
    margin: float = Field(
        0.0, ge=0.0, le=1.0, description="Required gain: challenger > champion + margin."
    )
    mcnemar: bool = Field(False, description="Also require an exact McNemar test p < alpha.")
    alpha: float = Field(0.05, gt=0.0, lt=1.0)


class SweepConfig(_Section):
    """``melflow sweep``: the grid of ``train.*`` values whose every combination is trained.

    Checked by :mod:`melflow.sweep.grid` when a sweep starts (fields, values, combinations).
    """

    grid: dict[str, tuple[Any, ...]] = Field(
        default_factory=dict,
        description="Dotted train.* field -> values, e.g. {train.model.arch: [cnn, vgg]}.",
    )
    latency_repeats: int = Field(20, ge=1, le=10_000, description="Timed passes per latency.")


class PipelineConfig(_Section):
    """The whole pipeline; sections added by later stages default to sensible values."""

    name: str = "default"
    paths: PathsConfig = PathsConfig()
    corpus: CorpusConfig
    audio: AudioConfig = AudioConfig()
    features: FeaturesConfig = FeaturesConfig()
    dask: DaskConfig = DaskConfig()
    augment: AugmentConfig = AugmentConfig()
    train: TrainConfig = TrainConfig()
    cv: CvConfig = CvConfig()
    registry: RegistryConfig = RegistryConfig()
    sweep: SweepConfig = SweepConfig()

    @model_validator(mode="after")
    def _check_cross(self) -> PipelineConfig:
        nyquist = self.audio.sr / 2
        if self.features.fmax is not None and self.features.fmax > nyquist:
            raise ValueError(
                f"features.fmax={self.features.fmax} is above the Nyquist frequency "
                f"{nyquist:g} Hz of audio.sr={self.audio.sr}; lower it or raise audio.sr"
            )
        if self.features.n_fft > self.audio.sr * self.audio.duration_s:
            raise ValueError("features.n_fft is longer than audio.duration_s * audio.sr")
        if self.train.feature not in self.features.kinds:
            raise ValueError(
                f"train.feature={self.train.feature!r} is not extracted; add it to features.kinds "
                f"(now {list(self.features.kinds)})"
            )
        return self


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _builtin_profile_dir() -> Path:
    """The profiles shipped with melflow: inside the installed package, else the checkout's."""
    packaged = Path(__file__).resolve().parent / "pipeline_config"
    return packaged if packaged.is_dir() else PROFILE_DIR


def profile_dirs() -> list[Path]:
    """Where profile names are looked up, first match wins: each folder of
    ``$MELFLOW_PROFILE_DIR`` (``os.pathsep``-separated), then the built-in profiles."""
    extra = os.environ.get(PROFILE_DIR_ENV, "")
    return [*(Path(p) for p in extra.split(os.pathsep) if p), _builtin_profile_dir()]


def list_profiles() -> list[str]:
    """Names of the profiles available in :func:`profile_dirs`."""
    return sorted({p.stem for folder in profile_dirs() for p in folder.glob("*.yaml")})


def _resolve_profile(profile: str | Path, *, near: Path | None = None) -> Path:
    """A profile given as a YAML path or a name; ``near`` (the folder of the profile that
    ``extends:`` it) is searched first, and relative paths are taken from it."""
    path = Path(profile)
    if path.suffix in {".yaml", ".yml"}:
        candidate = path if near is None or path.is_absolute() else near / path
        if candidate.exists():
            return candidate
    folders = ([near] if near is not None else []) + profile_dirs()
    for folder in folders:
        candidate = folder / f"{profile}.yaml"
        if candidate.exists():
            return candidate
    known = ", ".join(list_profiles())
    raise ConfigError(f"profile {str(profile)!r} not found; use a YAML path or one of: {known}")


def _read_profile(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise ConfigError(f"profile {path} extends itself through {[str(p) for p in seen]}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"profile {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"profile {path} must be a mapping of sections, got {type(data).__name__}"
        )
    parent = data.pop("extends", None)
    if parent is None:
        return data
    parent_path = _resolve_profile(parent, near=path.parent)
    return _deep_merge(_read_profile(parent_path, (*seen, path)), data)


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``"features.n_mels=128"`` into ``(["features", "n_mels"], 128)`` (YAML-typed)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.field=value")
    key, raw = item.split("=", 1)
    keys = [k for k in key.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"override {item!r} has an empty field name")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from exc
    return keys, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return ``data`` with each ``a.b.c=value`` override set (intermediate dicts created)."""
    result = dict(data)
    for item in overrides:
        keys, value = parse_override(item)
        patch: dict[str, Any] = {keys[-1]: value}
        for key in reversed(keys[:-1]):
            patch = {key: patch}
        result = _deep_merge(result, patch)
    return result


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: the dotted field, what was given, and what is allowed."""
    lines = [f"invalid configuration ({source}):"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        given = secrets.redact(err.get("input"), secret=secrets.is_secret_path(err["loc"]))
        given_text = "" if isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"  - {field}: {err['msg']}{given_text}")
    return "\n".join(lines)


def validate_config(data: dict[str, Any], *, source: str = "<dict>") -> PipelineConfig:
    """Validate a raw mapping into a :class:`PipelineConfig`, raising :class:`ConfigError`."""
    secrets.remember(secrets.secret_values(data))
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(
    profile: str | Path = "default", *, overrides: list[str] | None = None
) -> PipelineConfig:
    """Load a profile (name or YAML path), apply ``key=value`` overrides and validate.

    Parameters
    ----------
    profile : str or Path
        A name in :func:`profile_dir` (``"small"``) or a path to a YAML file.
    overrides : list of str, optional
        Dotted assignments applied after the YAML layers, e.g. ``["features.n_mels=128"]``.

    Returns
    -------
    PipelineConfig
        The validated, frozen configuration.

    Raises
    ------
    ConfigError
        Unknown profile, bad YAML, or any invalid field (named, with what is allowed).
    """
    path = _resolve_profile(profile)
    data = apply_overrides(_read_profile(path), list(overrides or []))
    return validate_config(data, source=str(path))
