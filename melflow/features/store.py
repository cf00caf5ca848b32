"""A chunked, compressed Zarr v3 row store written in parallel, batch by batch, resumably.

Layout of a store at ``<url>``::

    <url>/data.zarr/<array>                Zarr group: one array per feature kind
                                           [rows, *row_shape] plus one string array per column
    <url>/_melflow/batches/<b>.json        the items of batch b (what a worker computes)
    <url>/_melflow/keys/<p>.npy            hashes of the keys planned by append p (16 B/key)
    <url>/_melflow/keys/00000000-<q>.npy   consolidated: the keys of every append before q
    <url>/_melflow/plans/<p>-<q>.parquet   commit record of append p (batches p .. q-1):
                                           key, row, batch, columns
    <url>/_melflow/done/<b>                batch b is written (the completion marker)
    <url>/_melflow/complete/<digest>.json  every item of that input digest is written

Every batch is exactly one stored object: a chunk of ``chunk_rows`` rows, or with
``shard_chunks > 1`` a Zarr v3 shard of ``shard_chunks`` chunks, starting at a multiple
of its size, so no two tasks ever write one object (a shard written by two tasks at once
would lose one task's chunks); a short last batch is padded with empty rows
(``key == ""``). Appending never rewrites an existing object. Readers still fetch one
chunk at a time: a shard's index tells where each chunk lies inside it. Plans are
made under a lock and committed by writing the plan file last, so a killed run resumes
with exactly the same batches and produces an identical store.

Planning reads only the key index (:mod:`melflow.features.keyindex`) and the names of the
plan files, never the plans of earlier appends: an incremental run costs 16 bytes per
planned clip plus the work of its new clips. The index is the latest consolidated part
plus the parts of later appends; once there are more than :data:`MAX_KEY_PARTS` of those,
the planner that holds the claim merges them into a new consolidated part, so a plan
reads a handful of files and searches a handful of sorted arrays, however many appends
the store has seen.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from filelock import FileLock

from melflow import secrets, storage
from melflow.errors import StoreError
from melflow.features.keyindex import (
    KeyIndex,
    hashes_bytes,
    hashes_from_bytes,
    key_hashes,
    sorted_hashes,
)

if TYPE_CHECKING:  # a fully cached run or `melflow status` reads markers only: no Dask, no Zarr
    import pandas as pd  # nor does a worker, which writes batches: no pandas
    import pyarrow as pa
    import zarr
    from distributed import Client

META = "_melflow"
KEY = "key"
MAX_OPEN_STORES = 16
# Planning takes seconds: a claim this old was left by a planner that died.
CLAIM_STALE_S = 600.0
PLAN_WAIT_S = 120.0
# Appended key parts read besides the consolidated one before they are merged into it.
MAX_KEY_PARTS = 8
_WRITABLE: dict[str, dict[str, zarr.Array]] = {}


@dataclass(frozen=True)
class ArraySpec:
    """A numeric per-row array: ``name``, the shape of one row, and its dtype."""

    name: str
    row_shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class StoreLayout:
    """What a store holds; its fields (with ``attrs``) are checked when a store is reopened."""

    arrays: tuple[ArraySpec, ...]
    columns: tuple[str, ...]
    chunk_rows: int
    compression_level: int = 1
    shard_chunks: int = 1
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Batch:
    """One unit of parallel work: ``items`` become rows ``start .. start + len(items) - 1``."""

    index: int
    start: int
    items: list[dict[str, Any]]


class RowStore:
    """Handle on a store at a local path or fsspec URL; cheap to create, safe to pickle."""

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.storage_options = dict(storage_options or {})
        # Resolved here, in the client: a pickled handle must find the same files on a
        # worker of an existing cluster, which runs in another working directory.
        self._root = storage.absolute(url)
        # The key index read so far and the batch it covers up to: later calls read only
        # the parts of appends committed since (never pickled: workers do not plan).
        self._known: tuple[KeyIndex, int] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_known": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        # A worker that receives credentials scrubs them from its own logs (a failed
        # batch's log line names the task's arguments, this handle among them).
        secrets.remember(secrets.secret_values({"storage_options": self.storage_options}))

    # -- paths ---------------------------------------------------------------------------
    def _meta(self, *parts: str) -> str:
        return storage.join(self._root, META, *parts)

    @property
    def zarr_url(self) -> str:
        return storage.join(self._root, "data.zarr")

    def _zarr_kwargs(self) -> dict[str, Any]:
        return {"storage_options": self.storage_options} if storage.is_url(self.url) else {}

    def group(self, mode: str = "r") -> zarr.Group:
        """The underlying Zarr group (``mode='r'`` to read, ``'r+'`` to write)."""
        import zarr

        try:
            return zarr.open_group(self.zarr_url, mode=mode, **self._zarr_kwargs())  # type: ignore[arg-type]
        except FileNotFoundError as exc:
            raise StoreError(f"no feature store at {self.url}") from exc

    def exists(self) -> bool:
        return storage.exists(storage.join(self.zarr_url, "zarr.json"), self.storage_options)

    def lock(self) -> FileLock:
        """Inter-process lock serialising plans and resizes of this store."""
        return FileLock(storage.lock_path(self.url if storage.is_url(self.url) else self._meta()))

    # -- creation ------------------------------------------------------------------------
    def ensure(self, layout: StoreLayout) -> None:
        """Create the store for ``layout``, or check that the existing one matches it.

        ``chunk_rows``, ``shard_chunks`` and ``compression_level`` apply to a new store only:
        an existing store keeps its own, so changing them never invalidates computed rows.
        """
        with self.lock():
            if self.exists():
                found = dict(self.group().attrs).get("layout")
                if _content(found) != _content(_layout_json(layout)):
                    raise StoreError(
                        f"store {self.url} was made for another layout/config; "
                        "remove it or use a different data_dir"
                    )
                return
            import zarr
            from zarr.codecs import ZstdCodec

            root = zarr.open_group(self.zarr_url, mode="w", **self._zarr_kwargs())
            compressors = ZstdCodec(level=layout.compression_level)
            batch_rows = layout.chunk_rows * layout.shard_chunks
            sharded = layout.shard_chunks > 1
            for spec in layout.arrays:
                root.create_array(
                    spec.name,
                    shape=(0, *spec.row_shape),
                    chunks=(layout.chunk_rows, *spec.row_shape),
                    shards=(batch_rows, *spec.row_shape) if sharded else None,
                    dtype=spec.dtype,
                    compressors=compressors,
                    fill_value=0,
                )
            for column in (KEY, *layout.columns):
                root.create_array(
                    column,
                    shape=(0,),
                    chunks=(layout.chunk_rows,),
                    shards=(batch_rows,) if sharded else None,
                    dtype=str,
                )
            root.attrs.update(
                {
                    "layout": _layout_json(layout),
                    "chunk_rows": layout.chunk_rows,
                    "batch_rows": batch_rows,
                }
            )

    @property
    def chunk_rows(self) -> int:
        """Rows per chunk: the unit of reading."""
        return int(str(self.group().attrs["chunk_rows"]))

    @property
    def batch_rows(self) -> int:
        """Rows per batch: one stored object (a chunk, or a shard of chunks)."""
        attrs = self.group().attrs
        return int(str(attrs.get("batch_rows", attrs["chunk_rows"])))

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group().attrs)

    # -- plans ---------------------------------------------------------------------------
    def _appends(self) -> list[tuple[int, int, str]]:
        """``(first, end, plan file name)`` of every committed append, in batch order."""
        found = []
        for name in storage.listdir_names(self._meta("plans"), self.storage_options):
            first, sep, end = name.removesuffix(".parquet").partition("-")
            if name.endswith(".parquet") and sep and first.isdigit() and end.isdigit():
                found.append((int(first), int(end), name))
        return sorted(found)

    def next_batch(self) -> int:
        """Index of the next batch to plan (batches ``0 .. next_batch() - 1`` are planned)."""
        appends = self._appends()
        return appends[-1][1] if appends else 0

    def key_index(self) -> KeyIndex:
        """The hashes of every planned key (what planning reads instead of the plans).

        The first call reads the latest consolidated part and the parts of later appends;
        later calls on this handle read only the parts of appends committed since.
        """
        appends = self._appends()
        end = appends[-1][1] if appends else 0
        # Plans only ever get added; fewer than we saw means the store was removed and
        # made again under this URL: what we hold describes another store.
        if self._known is None or self._known[1] > end:
            self._known = self._read_key_index()
        index, covered = self._known
        for first, _, _ in appends:
            if first >= covered:
                index.add(self._read_keys(f"{first:08d}.npy"))
        self._known = (index, end)
        return index

    def _read_keys(self, name: str) -> np.ndarray:
        return hashes_from_bytes(storage.read_bytes(self._meta("keys", name), self.storage_options))

    def _consolidations(self) -> list[int]:
        """Ends ``q`` of the consolidated parts ``00000000-<q>.npy`` in the keys folder."""
        ends = []
        for name in storage.listdir_names(self._meta("keys"), self.storage_options):
            first, sep, end = name.removesuffix(".npy").partition("-")
            if name.endswith(".npy") and sep and first == f"{0:08d}" and end.isdigit():
                ends.append(int(end))
        return sorted(ends)

    def _read_key_index(self) -> tuple[KeyIndex, int]:
        """The latest consolidated part of committed appends, and the batch it ends at."""
        for attempt in itertools.count():
            ends = {end for _, end, _ in self._appends()}
            merged = [q for q in self._consolidations() if q in ends]
            if not merged:
                return KeyIndex(), 0
            try:
                return KeyIndex([self._read_keys(f"{0:08d}-{merged[-1]:08d}.npy")]), merged[-1]
            except FileNotFoundError:
                # A newer consolidation replaced the one we listed: list again.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _consolidate_keys(self, index: KeyIndex, end: int) -> None:
        """Write ``index`` (every key of the appends before ``end``) as one consolidated part.

        Runs under the claim, after the plan of the append ending at ``end`` is committed;
        the consolidated parts it supersedes are removed (readers that listed one of them
        list again), the per-append parts are kept.
        """
        merged = index.consolidated()
        name = f"{0:08d}-{end:08d}.npy"
        storage.write_bytes_atomic(
            self._meta("keys", name), hashes_bytes(merged), self.storage_options
        )
        index.replace_parts(merged)
        for q in self._consolidations():
            if q < end:
                storage.remove(self._meta("keys", f"{0:08d}-{q:08d}.npy"), self.storage_options)

    def unplanned(
        self, keys: Sequence[str] | np.ndarray | pa.Array, known: KeyIndex | None = None
    ) -> np.ndarray:
        """Boolean mask, shape ``(len(keys),)``: keys not planned yet (``known``: the index)."""
        known = self.key_index() if known is None else known
        return ~known.contains(key_hashes(keys))

    def index(self) -> pd.DataFrame:
        """Every planned row: ``key``, ``row``, ``batch`` and the layout's columns."""
        import pandas as pd

        frames = [
            pd.read_parquet(
                io.BytesIO(storage.read_bytes(self._meta("plans", name), self.storage_options))
            )
            for _, _, name in self._appends()
        ]
        if not frames:
            return pd.DataFrame(
                {
                    KEY: pd.Series(dtype=str),
                    "row": pd.Series(dtype="int64"),
                    "batch": pd.Series(dtype="int64"),
                }
            )
        return (
            pd.concat(frames, ignore_index=True)
            .sort_values("row", kind="stable")
            .reset_index(drop=True)
        )

    def _claim(self, first: int) -> str | None:
        """Claim the batches from ``first`` for this planner, whatever machine it runs on.

        Returns the claim's path, or ``None`` while another planner holds a live claim. A
        claim is a create-only object, so of two machines planning at once exactly one
        gets it; one left by a planner that died is taken over after :data:`CLAIM_STALE_S`.
        """
        holder = {"host": socket.gethostname(), "pid": os.getpid()}
        for generation in itertools.count():
            path = self._meta("claims", f"{first:08d}.{generation}")
            try:
                data = json.dumps({**holder, "at": time.time()}).encode()
                storage.create_exclusive(path, data, self.storage_options)
                return path
            except FileExistsError:
                held = json.loads(storage.read_bytes(path, self.storage_options))
                if time.time() - float(held["at"]) < CLAIM_STALE_S:
                    return None
        raise AssertionError("unreachable")  # pragma: no cover

    def _claim_next(self) -> tuple[int, str]:
        """The next batch index and this planner's claim on it (waits for other planners)."""
        deadline = time.monotonic() + PLAN_WAIT_S
        while True:
            first = self.next_batch()
            claim = self._claim(first)
            if claim is not None:
                # Another planner may have committed from ``first`` and released its claim
                # between our two steps: its plan is visible now (plans precede releases).
                if self.next_batch() == first:
                    return first, claim
                storage.remove(claim, self.storage_options)
                continue
            if time.monotonic() > deadline:
                raise StoreError(
                    f"another machine has been planning store {self.url} for over "
                    f"{PLAN_WAIT_S:.0f} s (claim {self._meta('claims')}/{first:08d}.*); "
                    "retry later, or delete the claim if that run died"
                )
            time.sleep(0.5)

    def append(self, items: Sequence[dict[str, Any]], *, columns: Sequence[str]) -> list[Batch]:
        """Plan batches for the items whose ``key`` is not planned yet, and grow the arrays.

        Items are processed in the order given; each must hold ``key`` and every name in
        ``columns``. Returns the new batches (empty when every key is already planned).
        Callers that know most keys are planned pass only :meth:`unplanned` ones: planning
        then costs what is new, not the corpus.
        """
        if not items:
            return []
        # The local lock serialises planners of this machine; the claim, those of others.
        with self.lock():
            first_batch, claim = self._claim_next()
            try:
                return self._plan(first_batch, items, columns)
            finally:
                storage.remove(claim, self.storage_options)

    def _plan(
        self, first_batch: int, items: Sequence[dict[str, Any]], columns: Sequence[str]
    ) -> list[Batch]:
        """Plan the unplanned ``items`` as batches from ``first_batch`` (claimed), commit."""
        import pandas as pd

        known = self.key_index()  # every committed append: the claim keeps others out
        hashes = key_hashes([item[KEY] for item in items])
        fresh_mask = ~known.contains(hashes)
        fresh = [item for item, new in zip(items, fresh_mask, strict=True) if new]
        if not fresh:
            return []
        chunk = self.batch_rows
        batches = [
            Batch(
                index=first_batch + i,
                start=(first_batch + i) * chunk,
                items=list(fresh[o : o + chunk]),
            )
            for i, o in enumerate(range(0, len(fresh), chunk))
        ]
        for batch in batches:
            payload = {"index": batch.index, "start": batch.start, "items": batch.items}
            storage.write_bytes_atomic(
                self._meta("batches", f"{batch.index:08d}.json"),
                json.dumps(payload, sort_keys=True).encode(),
                self.storage_options,
            )
        end_batch = first_batch + len(batches)
        self._grow(end_batch * chunk)
        fresh_hashes = sorted_hashes(hashes[fresh_mask])
        storage.write_bytes_atomic(
            self._meta("keys", f"{first_batch:08d}.npy"),
            hashes_bytes(fresh_hashes),
            self.storage_options,
        )
        starts = [(batch.start, batch.index, len(batch.items)) for batch in batches]
        plan = pd.DataFrame(
            {
                KEY: [item[KEY] for item in fresh],
                "row": np.concatenate([np.arange(s, s + n) for s, _, n in starts]),
                "batch": np.concatenate([np.full(n, b) for _, b, n in starts]),
                **{c: [str(item[c]) for item in fresh] for c in columns},
            }
        )
        buf = io.BytesIO()
        plan.to_parquet(buf, index=False)
        # The plan file is the commit point: batches and keys without one are overwritten
        # by the next append, which starts at the same batch.
        storage.write_bytes_atomic(
            self._meta("plans", f"{first_batch:08d}-{end_batch:08d}.parquet"),
            buf.getvalue(),
            self.storage_options,
        )
        known.add(fresh_hashes)
        self._known = (known, end_batch)
        if known.n_parts > MAX_KEY_PARTS:
            self._consolidate_keys(known, end_batch)
        return batches

    def _grow(self, n_rows: int) -> None:
        from zarr.core.sync import sync

        short = [a for _, a in self.group("r+").arrays() if a.shape[0] < n_rows]
        sync(_resize_all(short, n_rows))

    def batch(self, index: int) -> Batch:
        """Read one planned batch (what a worker does first)."""
        payload = json.loads(
            storage.read_bytes(self._meta("batches", f"{index:08d}.json"), self.storage_options)
        )
        return Batch(index=payload["index"], start=payload["start"], items=payload["items"])

    def planned_batches(self) -> list[int]:
        """Every planned batch, in order."""
        return list(range(self.next_batch()))

    # -- markers -------------------------------------------------------------------------
    def done_batches(self) -> set[int]:
        return {
            int(name)
            for name in storage.listdir_names(self._meta("done"), self.storage_options)
            if name.isdigit()
        }

    def pending_batches(self) -> list[int]:
        """Planned batches without a completion marker, in order."""
        done = self.done_batches()
        return [b for b in self.planned_batches() if b not in done]

    def write_batch(
        self, batch: Batch, arrays: dict[str, np.ndarray], *, columns: Sequence[str]
    ) -> None:
        """Write a batch's whole chunk or shard (padded with empty rows), then its marker.

        ``arrays[name]`` has shape ``(len(batch.items), *row_shape)``.
        """
        targets = self._writable(batch.start + len(batch.items))
        chunk = (targets[KEY].shards or targets[KEY].chunks)[0]
        region = slice(batch.start, batch.start + chunk)
        n = len(batch.items)
        blocks: dict[str, np.ndarray] = {}
        for name, values in arrays.items():
            if values.shape[0] != n:
                raise StoreError(
                    f"batch {batch.index}: {name} has {values.shape[0]} rows, expected {n}"
                )
            target = targets[name]
            blocks[name] = np.zeros((chunk, *target.shape[1:]), dtype=target.dtype)
            blocks[name][:n] = values
        for column in (KEY, *columns):
            texts = [str(item[column]) for item in batch.items] + [""] * (chunk - n)
            blocks[column] = np.array(texts, dtype=object)
        from zarr.core.sync import sync

        # One event-loop round trip for all arrays: their chunks encode and land concurrently.
        sync(_set_all([(targets[name], block) for name, block in blocks.items()], region))
        storage.write_bytes_atomic(
            self._meta("done", f"{batch.index:08d}"), b"", self.storage_options
        )

    def _writable(self, n_rows: int) -> dict[str, zarr.Array]:
        """Open handles on every array, valid for writing the first ``n_rows`` rows.

        Handles are kept per store URL in this process: reopening the group and each
        array's metadata cost as much as encoding a batch. A store's URL names its layout
        and its arrays only grow, so a handle stays valid until a batch lies past its end.
        """
        targets = _WRITABLE.get(self.zarr_url)
        if targets is None or any(a.shape[0] < n_rows for a in targets.values()):
            root = self.group("r+")
            targets = {name: _array(root, name) for name in root.array_keys()}
            if len(_WRITABLE) >= MAX_OPEN_STORES:
                _WRITABLE.clear()
            _WRITABLE[self.zarr_url] = targets
        return targets

    def mark_complete(self, digest: str, info: dict[str, Any]) -> None:
        storage.write_bytes_atomic(
            self._meta("complete", f"{digest}.json"),
            json.dumps(info, sort_keys=True).encode(),
            self.storage_options,
        )

    def complete_info(self, digest: str) -> dict[str, Any] | None:
        """The info saved by :meth:`mark_complete` for ``digest``, or ``None``."""
        path = self._meta("complete", f"{digest}.json")
        if not storage.exists(path, self.storage_options):
            return None
        result: dict[str, Any] = json.loads(storage.read_bytes(path, self.storage_options))
        return result

    # -- reading -------------------------------------------------------------------------
    def rows_for(self, keys: Iterable[str]) -> pd.DataFrame:
        """Index rows for ``keys`` in the order given; raises if a key is not planned."""
        wanted = list(keys)
        index = self.index().set_index(KEY)
        missing = [k for k in wanted if k not in index.index]
        if missing:
            raise StoreError(f"{len(missing)} keys are not in store {self.url}, e.g. {missing[:3]}")
        return index.loc[wanted].reset_index()


async def _resize_all(arrays: list[zarr.Array], n_rows: int) -> None:
    # Shrinking is never asked for, so no chunk outside the new shape needs deleting.
    await asyncio.gather(
        *(
            array._async_array.resize((n_rows, *array.shape[1:]), delete_outside_chunks=False)
            for array in arrays
        )
    )


async def _set_all(targets: list[tuple[zarr.Array, np.ndarray]], region: slice) -> None:
    await asyncio.gather(*(array._async_array.setitem(region, block) for array, block in targets))


def _array(root: zarr.Group, name: str) -> zarr.Array:
    import zarr

    node = root[name]
    if not isinstance(node, zarr.Array):
        raise StoreError(f"{name} in {root.store} is a group, expected an array")
    return node


def _content(layout_json: Any) -> Any:
    """A stored layout without its storage settings (what :meth:`RowStore.ensure` compares)."""
    if not isinstance(layout_json, dict):
        return layout_json
    storage = ("chunk_rows", "compression_level", "shard_chunks")
    return {k: v for k, v in layout_json.items() if k not in storage}


def _layout_json(layout: StoreLayout) -> dict[str, Any]:
    return json.loads(
        json.dumps(
            {
                "arrays": [[a.name, list(a.row_shape), a.dtype] for a in layout.arrays],
                "columns": list(layout.columns),
                "chunk_rows": layout.chunk_rows,
                "compression_level": layout.compression_level,
                "shard_chunks": layout.shard_chunks,
                "attrs": layout.attrs,
            },
            sort_keys=True,
            default=str,
        )
    )


@dataclass(frozen=True)
class FillResult:
    """What filling a store for one manifest did: where, how much, and whether it was cached.

    ``skipped`` marks a stage that is disabled by configuration (nothing written).
    """

    store_url: str
    manifest_digest: str
    rows: int
    batches_total: int
    batches_computed: int
    cached: bool
    skipped: bool = False

    def as_cached(self) -> FillResult:
        """What a later run finds once this fill is done: the same store, nothing computed."""
        return replace(self, batches_computed=0, cached=True)


def completed_fill(
    url: str, *, digest: str, storage_options: dict[str, Any] | None = None
) -> FillResult | None:
    """The result of a store already complete for ``digest``, or ``None`` if work remains."""
    store = RowStore(url, storage_options=storage_options)
    info = store.complete_info(digest) if store.exists() else None
    if info is None:
        return None
    return FillResult(url, digest, int(info["rows"]), int(info["batches"]), 0, cached=True)


def fill_store(
    store: RowStore,
    *,
    items: list[dict[str, Any]],
    n_items: int,
    columns: Sequence[str],
    client: Client,
    fn: Callable[..., int],
    kwargs: dict[str, Any],
    digest: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> FillResult:
    """Plan ``items`` into ``store``, run every pending batch on ``client``, mark ``digest`` done.

    ``items`` are the input's items that may be unplanned (all of them, or only those
    :meth:`RowStore.unplanned` found); ``n_items`` counts all of the input's items.
    ``fn(index, store=store, **kwargs)`` computes and writes one batch on a worker and
    returns its row count; ``on_progress(done_rows, total_rows)`` follows each batch.

    Returns
    -------
    FillResult
        ``batches_total``: the batches of the store once ``digest`` is complete;
        ``batches_computed``: those written by this call.
    """
    sizes = {b.index: len(b.items) for b in store.append(items, columns=columns)}
    pending = store.pending_batches()
    # Batches left pending by a killed run count as full: reading their plans to know
    # would cost what a resume should not.
    full = store.batch_rows if pending else 0
    total = sum(sizes.get(b, full) for b in pending)
    finished = 0

    def progress(n: int) -> None:
        nonlocal finished
        finished += n
        if on_progress is not None:
            on_progress(finished, total)

    from melflow.parallel import run_batches  # loads distributed only when there is work

    run_batches(client, fn, pending, kwargs={"store": store, **kwargs}, on_done=progress)
    batches = store.next_batch()
    store.mark_complete(digest, {"rows": n_items, "batches": batches})
    return FillResult(store.url, digest, n_items, batches, len(pending), cached=False)
