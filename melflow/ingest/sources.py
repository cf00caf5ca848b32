"""Where clips come from: the files under a corpus root, and each file's label and group.

Every candidate clip becomes one row, even when it cannot be used: a path that escapes
the root, a file listed but absent, or a file whose label cannot be derived keeps its row
with the quarantine reason in ``status`` (filled in here when the reason is known without
reading the file).
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from fsspec.core import strip_protocol

from melflow import storage
from melflow.config import CorpusConfig
from melflow.errors import ConfigError
from melflow.manifest import OK

# Columns of a candidate table: the manifest's identity columns known before probing, plus
# where to read the file (``location``, as its filesystem spells it) and its stat stamp.
CANDIDATE_COLUMNS: tuple[str, ...] = (
    "clip_id",
    "path",
    "location",
    "label",
    "group",
    "split",
    "fold",
    "status",
    "detail",
    "size",
    "mtime_ns",
)
NO_FOLD = -1
UNLABELLED: dict[str, str] = {
    "folder": "the file is not inside a class folder",
    "manifest": "empty label in corpus.manifest",
    "regex": "the file name does not match corpus.filename_regex",
}
UNKNOWN_STAMP = -1


@dataclass(frozen=True)
class Corpus:
    """A corpus root opened for listing and reading.

    Attributes
    ----------
    root : str
        Local: the resolved absolute folder. URL: the root as its filesystem spells it.
    fs : fsspec filesystem or None
        ``None`` for local folders, which are read with plain ``os`` calls (much faster).
    """

    root: str
    fs: Any = None

    def location(self, rel: str) -> str:
        """The path of corpus-relative ``rel`` as the filesystem spells it."""
        return os.path.join(self.root, rel) if self.fs is None else f"{self.root}/{rel}"

    def address(self, location: str) -> str:
        """The manifest's ``path`` of a :meth:`location`: an absolute local path or a full URL."""
        return location if self.fs is None else str(self.fs.unstrip_protocol(location))


def open_corpus(root: str, *, storage_options: dict[str, Any] | None = None) -> Corpus:
    """Open a corpus root (folder or fsspec URL), raising :class:`ConfigError` if absent."""
    if storage.is_url(root):
        fs, path = storage.filesystem(root, storage_options)
        if not fs.isdir(path):
            raise ConfigError(f"corpus.root {root!r} does not exist or is not a folder")
        return Corpus(root=path.rstrip("/"), fs=fs)
    path = os.path.realpath(os.path.expanduser(root))
    if not os.path.isdir(path):
        raise ConfigError(f"corpus.root {root!r} does not exist or is not a folder")
    return Corpus(root=path)


def audio_extensions(cfg: CorpusConfig) -> tuple[str, ...]:
    """``corpus.extensions`` lower-cased with a leading dot (matching is case-insensitive)."""
    return tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in cfg.extensions)


def walk_local_audio(root: str | Path, extensions: tuple[str, ...]) -> Iterator[str]:
    """Corpus-relative POSIX paths of the audio files under ``root``, in sorted order.

    Symlinked folders are not followed (they would list clips twice or leave the root);
    symlinked files are listed and checked by :func:`list_candidates`. A folder named like
    an audio file is listed too, so it gets a quarantine row instead of vanishing (its
    contents are walked as usual).
    """
    root = str(root)
    for folder, subfolders, names in os.walk(root):
        subfolders.sort()
        rel_folder = os.path.relpath(folder, root)
        for name in sorted([*names, *subfolders]):
            if name.lower().endswith(extensions):
                rel = name if rel_folder == "." else os.path.join(rel_folder, name)
                # A Path per file costs more than the walk itself at 10^5 files.
                yield rel if os.sep == "/" else rel.replace(os.sep, "/")


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _stat_stamp(info: dict[str, Any]) -> int:
    """A modification stamp in ns from an fsspec ``info`` dict (``-1`` when it has none)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return int(value.timestamp() * 1e9)
        if isinstance(value, int | float):
            return int(value * 1e9)
    return UNKNOWN_STAMP


class _Stamper:
    """Stat a corpus-relative file: ``(status, detail, size, mtime_ns)``.

    Local: the file's parent folder and (if a symlink) the file are resolved to catch
    links out of the root; resolved folders are memoised, so a large corpus costs about one
    ``lstat`` per file. URL: one recursive listing, then lookups.
    """

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self._real_dirs: dict[str, str] = {}
        self._listing: dict[str, dict[str, Any]] | None = None

    def remote_listing(self) -> dict[str, dict[str, Any]]:
        if self._listing is None:
            found = self.corpus.fs.find(self.corpus.root, detail=True)
            self._listing = {
                str(p)[len(self.corpus.root) :].lstrip("/"): info for p, info in found.items()
            }
        return self._listing

    def __call__(self, rel: str, full: str) -> tuple[str, str, int, int]:
        """The stat of ``rel``, whose :meth:`Corpus.location` is ``full``."""
        if self.corpus.fs is not None:
            info = self.remote_listing().get(rel)
            if info is None:
                return "missing", "not in the corpus listing", 0, 0
            return OK, "", int(info.get("size") or 0), _stat_stamp(info)
        root = self.corpus.root
        parent = os.path.dirname(full)
        if parent not in self._real_dirs:
            self._real_dirs[parent] = os.path.realpath(parent)
        if not _inside(self._real_dirs[parent], root):
            return "path_outside_root", f"resolves outside the corpus root {root}", 0, 0
        try:
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                real = os.path.realpath(full)
                if not _inside(real, root):
                    return "path_outside_root", f"links to {real}, outside the corpus root", 0, 0
                st = os.stat(full)
        except FileNotFoundError:
            return "missing", "no such file", 0, 0
        except OSError as exc:
            return "unreadable", str(exc), 0, 0
        if not stat.S_ISREG(st.st_mode):
            return "unreadable", "not a regular file", 0, 0
        return OK, "", st.st_size, st.st_mtime_ns


def _list_files(corpus: Corpus, cfg: CorpusConfig, stamper: _Stamper) -> list[str]:
    extensions = audio_extensions(cfg)
    if corpus.fs is None:
        return list(walk_local_audio(corpus.root, extensions))
    return sorted(rel for rel in stamper.remote_listing() if rel.lower().endswith(extensions))


def _text(value: Any) -> str:
    """A cell as stripped text; missing values (None, NaN, '') become ''."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


def _fold(value: Any) -> int:
    text = _text(value)
    try:
        number = float(text)
    except ValueError:
        return NO_FOLD
    return int(number) if number.is_integer() else NO_FOLD


def _relative(raw: str, corpus: Corpus, given_root: str) -> str | None:
    """A manifest path as a corpus-relative POSIX path, or ``None`` if it escapes the root."""
    text = raw.replace("\\", "/")
    if storage.is_url(text) or text.startswith("/"):
        if corpus.fs is not None:
            text, roots = strip_protocol(text), [corpus.root]
        else:
            # Absolute paths may be written with the root as configured or as resolved.
            roots = [corpus.root, os.path.abspath(os.path.expanduser(given_root))]
        for root in roots:
            prefix = root.rstrip("/") + "/"
            if text.startswith(prefix):
                text = text[len(prefix) :]
                break
        else:
            return None
    rel = posixpath.normpath(text)
    if rel in (".", "..") or rel.startswith("../"):
        return None
    return rel


def _read_table(corpus: Corpus, cfg: CorpusConfig) -> pd.DataFrame:
    name = cfg.manifest or ""
    location = corpus.location(name)
    try:
        if corpus.fs is None:
            data = Path(location).read_bytes()
        else:
            data = bytes(corpus.fs.cat_file(location))
    except FileNotFoundError:
        raise ConfigError(f"corpus.manifest {name!r} not found under {corpus.root}") from None
    if name.lower().endswith((".parquet", ".pq")):
        return pd.read_parquet(io.BytesIO(data))
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)


def _required_columns(cfg: CorpusConfig) -> list[str]:
    columns = [cfg.path_column, cfg.label_column]
    if cfg.group_column:
        columns.append(cfg.group_column)
    if cfg.split_source == "column":
        columns.append(cfg.split_column)
    if cfg.split_source == "fold":
        columns.append(cfg.fold_column)
    return columns


class _Labeller:
    """Label and group of a file from its folder or file name."""

    def __init__(self, cfg: CorpusConfig) -> None:
        self.cfg = cfg
        self.regex = re.compile(cfg.filename_regex) if cfg.filename_regex else None

    def __call__(self, rel: str) -> tuple[str, str]:
        match = (
            self.regex.search(posixpath.splitext(posixpath.basename(rel))[0])
            if self.regex
            else None
        )
        found = match.groupdict() if match else {}
        if self.cfg.label_source == "regex":
            label = found.get("label") or ""
        else:
            label = posixpath.basename(posixpath.dirname(rel))
        return label, found.get("group") or ""


# (corpus-relative path or None when it escapes the root, path as given, label, group,
# split, fold): what a label source knows about a clip before the file is looked at.
Row = tuple[str | None, str, str, str, str, int]


def _manifest_rows(corpus: Corpus, cfg: CorpusConfig, labeller: _Labeller) -> Iterator[Row]:
    table = _read_table(corpus, cfg)
    missing = [c for c in _required_columns(cfg) if c not in table.columns]
    if missing:
        raise ConfigError(
            f"corpus.manifest {cfg.manifest!r} lacks columns {missing}; "
            f"it has {list(table.columns)}"
        )

    def column(name: str | None, default: str = "") -> list[str]:
        return [_text(v) for v in table[name]] if name else [default] * len(table)

    split_column = cfg.split_column if cfg.split_source == "column" else None
    fold_column = cfg.fold_column if cfg.fold_column in table.columns else None
    for raw, label, group, split, fold in zip(
        column(cfg.path_column),
        column(cfg.label_column),
        column(cfg.group_column),
        column(split_column),
        column(fold_column, str(NO_FOLD)),
        strict=True,
    ):
        rel = _relative(raw, corpus, cfg.root)
        yield rel, raw, label, group or labeller(rel or raw)[1], split, _fold(fold)


def _file_rows(
    corpus: Corpus, cfg: CorpusConfig, labeller: _Labeller, stamper: _Stamper
) -> Iterator[Row]:
    for rel in _list_files(corpus, cfg, stamper):
        label, group = labeller(rel)
        yield rel, rel, label, group, "", NO_FOLD


def _record(row: Row, corpus: Corpus, stamper: _Stamper, label_source: str) -> tuple[Any, ...]:
    """A candidate row (see :data:`CANDIDATE_COLUMNS`) with what stat and the label tell."""
    rel, raw, label, group, split, fold = row
    if rel is None:
        clip_id = posixpath.normpath(raw.replace("\\", "/"))
        path = raw if corpus.fs is not None else os.path.normpath(os.path.join(corpus.root, raw))
        location = path
        status, detail, size, mtime_ns = "path_outside_root", "escapes the corpus root", 0, 0
    else:
        clip_id, location = rel, corpus.location(rel)
        path = corpus.address(location)
        status, detail, size, mtime_ns = stamper(rel, location)
    if status == OK and not label:
        status, detail = "unlabelled", UNLABELLED[label_source]
    group = group or clip_id
    return (clip_id, path, location, label, group, split, fold, status, detail, size, mtime_ns)


def list_candidates(corpus: Corpus, cfg: CorpusConfig) -> pd.DataFrame:
    """One row per candidate clip, sorted by ``clip_id``, with :data:`CANDIDATE_COLUMNS`.

    ``status`` is ``ok`` or a reason known without reading: ``path_outside_root``,
    ``missing``, ``unreadable``, ``unlabelled``. ``group`` is the manifest's
    ``group_column``, else the regex's ``group``, else the ``clip_id`` (each clip its own
    group); ``split`` is ``''`` unless the manifest's ``split_column`` gives it.

    Raises
    ------
    ConfigError
        The manifest file or one of its configured columns is missing, or nothing was found.
    """
    stamper = _Stamper(corpus)
    labeller = _Labeller(cfg)
    if cfg.label_source == "manifest":
        rows = _manifest_rows(corpus, cfg, labeller)
    else:
        rows = _file_rows(corpus, cfg, labeller, stamper)
    records = [_record(row, corpus, stamper, cfg.label_source) for row in rows]
    if not records:
        raise ConfigError(
            f"no clips found under corpus.root {cfg.root!r} "
            f"(label_source {cfg.label_source!r}, extensions {list(cfg.extensions)})"
        )
    df = pd.DataFrame.from_records(records, columns=list(CANDIDATE_COLUMNS))
    return _number_repeats(df).sort_values("clip_id", kind="stable").reset_index(drop=True)


def _number_repeats(df: pd.DataFrame) -> pd.DataFrame:
    """A path listed twice in a manifest keeps its first row; repeats become ``duplicate``.

    Repeats get ``clip_id`` ``<path>#<n>`` so the id stays unique and the row stays visible.
    """
    repeat = df.groupby("clip_id").cumcount()
    if not repeat.any():
        return df
    df = df.copy()
    mask = repeat > 0
    df.loc[mask, "status"] = "duplicate"
    df.loc[mask, "detail"] = "listed again in corpus.manifest: " + df.loc[mask, "clip_id"]
    df.loc[mask, "clip_id"] = df.loc[mask, "clip_id"] + "#" + (repeat[mask] + 1).astype(str)
    return df
