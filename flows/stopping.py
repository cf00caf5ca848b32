"""Ctrl-C and SIGTERM stop ``melflow`` within seconds, children included, resumably.

A signal first unwinds the main thread normally (``KeyboardInterrupt``), so context
managers close the Dask cluster and Prefect marks the run. Work may sit in threads that
never see the signal (Prefect runs tasks in worker threads; interpreter shutdown waits for
them), so a watchdog thread, woken by the signal itself through
:func:`signal.set_wakeup_fd` whoever owns the Python-level handler (Prefect swaps SIGTERM's
during a flow run), stops every child process (Dask nannies and workers, the temporary
Prefect server) and ends the process :data:`GRACE_S` seconds later at the latest.

Nothing is lost by ending early: every output is written atomically and stages resume
from their markers and checkpoints, exactly as after ``kill -9``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from types import FrameType

import psutil

GRACE_S = 1.5  # time for the main thread to unwind before the watchdog ends the process
CHILD_GRACE_S = 0.5  # time children get to exit on SIGTERM before SIGKILL
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_stopping = threading.Event()
_signal_received: int | None = None
_installed = False


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + signum


def stop_children() -> None:
    """Terminate every descendant process, then kill those still alive shortly after."""
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=CHILD_GRACE_S)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(alive, timeout=CHILD_GRACE_S)


def stop_now(signum: int) -> None:
    """Stop the children and end the process at once (no waiting for worker threads)."""
    stop_children()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code(signum))


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _watch(read_fd: int) -> None:
    while True:
        data = os.read(read_fd, 64)
        received = [s for s in data if s in STOP_SIGNALS]
        if not received or _stopping.is_set():
            continue
        global _signal_received
        _signal_received = received[0]
        _stopping.set()
        name = signal.Signals(received[0]).name
        print(
            f"melflow: {name} received, stopping (finished work is kept; rerun to resume)",
            file=sys.stderr,
            flush=True,
        )
        # Let the main thread unwind (it stops the cluster and marks the run) but no longer.
        threading.Event().wait(GRACE_S)
        stop_now(received[0])


def install() -> None:
    """Arm the watchdog; call once from the main thread of the ``melflow`` process only
    (it ends the process, so never inside a test runner)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    threading.Thread(target=_watch, args=(read_fd,), name="melflow-stop", daemon=True).start()
    _installed = True


def interrupted() -> int | None:
    """The signal that is stopping the process, if the watchdog is armed and one arrived."""
    return _signal_received if _installed else None


def installed() -> bool:
    """True in the ``melflow`` process once :func:`install` ran."""
    return _installed
