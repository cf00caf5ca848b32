"""One writer per data folder: the run lock, held for a whole run.

- Local data folder: an OS file lock on ``<data_dir>/locks/run.lock``; the OS releases it
  when its holder dies, however it dies.
- Object storage: a lease object ``<data_dir>/locks/run.lease`` created with a conditional
  write (create only if absent), holding its owner and an expiry time. The holder renews it
  every third of :data:`LEASE_TTL_S`; a holder that dies stops renewing, and once the lease
  has expired the next run deletes it and creates its own.

A second run on the same folder waits and says so through ``on_wait`` (or, with
``wait=False``, fails at once with :class:`~melflow.errors.RunLockedError`), so two runs
never interleave. The lock is reentrant within a process: a flow that calls another flow
on the same folder holds it once.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from filelock import FileLock, Timeout

from melflow import storage
from melflow.config import PipelineConfig
from melflow.errors import RunLockedError
from melflow.layout import Layout

LEASE_TTL_S = 60.0
POLL_S = 1.0
_held: dict[str, int] = {}
_held_guard = threading.Lock()


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Lease:
    """A lease object on an fsspec filesystem."""

    path: str
    storage_options: dict[str, Any]
    ttl_s: float
    token: str = ""

    def _fs(self) -> Any:
        fs, p = storage.filesystem(self.path, self.storage_options)
        fs.invalidate_cache(p)
        return fs, p

    def _body(self) -> bytes:
        expires = time.time() + self.ttl_s
        return json.dumps({"token": self.token, "holder": _holder(), "expires": expires}).encode()

    def read(self) -> dict[str, Any] | None:
        fs, p = self._fs()
        try:
            data: dict[str, Any] = json.loads(fs.cat_file(p))
        except FileNotFoundError:
            return None
        except ValueError:  # a torn or foreign object: treat it as expired
            return {"token": "", "holder": "?", "expires": 0.0}
        return data

    def try_acquire(self) -> str | None:
        """Create the lease if absent (or expired); ``None`` on success, else its holder."""
        fs, p = self._fs()
        self.token = uuid.uuid4().hex
        try:
            fs.pipe_file(p, self._body(), mode="create")
            return None
        except FileExistsError:
            pass
        current = self.read()
        if current is None:
            return "?"  # released in between: the next poll takes it
        if float(current.get("expires", 0.0)) > time.time():
            return str(current.get("holder", "?"))
        # Expired: its holder died. Delete it only if it is still that same lease.
        again = self.read()
        if again is not None and again.get("token") == current.get("token"):
            fs.rm_file(p)
        return f"{current.get('holder', '?')} (expired)"

    def renew(self) -> bool:
        """Extend our lease; False when it is no longer ours."""
        current = self.read()
        if current is None or current.get("token") != self.token:
            return False
        fs, p = self._fs()
        fs.pipe_file(p, self._body())
        return True

    def release(self) -> None:
        current = self.read()
        if current is not None and current.get("token") == self.token:
            fs, p = self._fs()
            fs.rm_file(p)


@contextmanager
def _renewing(lease: _Lease) -> Iterator[None]:
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(lease.ttl_s / 3):
            if not lease.renew():
                return

    thread = threading.Thread(target=beat, name="melflow-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        lease.release()


@contextmanager
def _lease_lock(
    layout: Layout,
    *,
    wait: bool,
    on_wait: Callable[[str], None] | None,
    ttl_s: float,
    poll_s: float,
) -> Iterator[None]:
    lease = _Lease(layout.path("locks", "run.lease"), layout.storage_options, ttl_s)
    told = False
    while (holder := lease.try_acquire()) is not None:
        if not wait:
            raise RunLockedError(_busy(layout.root, holder))
        if not told and on_wait is not None:
            on_wait(f"{_busy(layout.root, holder)}; waiting for it to finish")
            told = True
        time.sleep(poll_s)
    with _renewing(lease):
        yield


@contextmanager
def _file_lock(
    layout: Layout, *, wait: bool, on_wait: Callable[[str], None] | None, poll_s: float
) -> Iterator[None]:
    lock = FileLock(layout.lock_file("run"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise RunLockedError(_busy(layout.root, "another process")) from None
        if on_wait is not None:
            on_wait(f"{_busy(layout.root, 'another process')}; waiting for it to finish")
        lock.acquire(poll_interval=poll_s)
    try:
        yield
    finally:
        lock.release()


def _busy(root: str, holder: str) -> str:
    return f"another melflow run ({holder}) is writing to the data folder {root}"


@contextmanager
def run_lock(
    cfg: PipelineConfig,
    *,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    ttl_s: float = LEASE_TTL_S,
    poll_s: float = POLL_S,
) -> Iterator[None]:
    """Hold the data folder's run lock for the duration of the block.

    Parameters
    ----------
    cfg : PipelineConfig
        ``paths.data_dir`` (and ``storage_options`` for a URL) name the folder.
    wait : bool
        Wait for a run that holds the lock; ``False`` raises at once instead.
    on_wait : callable, optional
        Called once with a sentence saying who holds the lock, before waiting.
    ttl_s, poll_s : float
        Lease lifetime (object storage) and polling interval, in seconds.

    Raises
    ------
    RunLockedError
        ``wait`` is false and another run holds the lock.
    """
    layout = Layout.of(cfg)
    with _held_guard:
        if _held.get(layout.root):
            _held[layout.root] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[layout.root] -= 1
        return
    lock = (
        _lease_lock(layout, wait=wait, on_wait=on_wait, ttl_s=ttl_s, poll_s=poll_s)
        if layout.is_url
        else _file_lock(layout, wait=wait, on_wait=on_wait, poll_s=poll_s)
    )
    with lock:
        with _held_guard:
            _held[layout.root] = 1
        try:
            yield
        finally:
            with _held_guard:
                _held.pop(layout.root, None)
