"""Secrets never leave the config: redacted config dumps, log records and error text.

A value is secret when it lies under ``storage_options`` (credentials and endpoints of
object storage) or under a field whose name says key, secret, token or password. Three
guards keep such values out of MLflow, Prefect, logs, summaries and error messages:

- :func:`redact` replaces them in a config mapping; every config section applies it to
  its JSON dump, which is what MLflow params and Prefect flow parameters are made of.
- :func:`remember` registers the values of a loaded config, and :func:`scrub` replaces
  them in free text (error messages).
- :func:`install_log_scrubber` scrubs every log record of the process when it is made.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "***"
SECRET_WORDS: tuple[str, ...] = ("key", "secret", "token", "password")
# Names whose whole subtree is secret, whatever its keys are called.
SECRET_TREES: tuple[str, ...] = ("storage_options",)
# Shorter values (``true``, a region like ``eu``) would scrub ordinary words from text.
MIN_SECRET_CHARS = 4
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]+:)(?P<password>[^/\s@]+)@")
_known: set[str] = set()


def is_secret_name(name: str) -> bool:
    """True for a field name that says key, secret, token or password (any case, any style).

    ``aws_secret_access_key``, ``secretAccessKey``, ``apikey`` and ``token`` are secret;
    ``endpoint_url`` and ``keyword`` are not.
    """
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    return any(word.endswith(SECRET_WORDS) for word in re.findall(r"[a-z0-9]+", words))


def _is_secret_key(name: Any) -> bool:
    return isinstance(name, str) and (name in SECRET_TREES or is_secret_name(name))


def is_secret_path(parts: Iterable[Any]) -> bool:
    """True when a part of a field path (``("paths", "storage_options", "key")``) is secret."""
    return any(_is_secret_key(str(part)) for part in parts)


def redact(data: Any, *, secret: bool = False) -> Any:
    """``data`` (nested dicts/lists of a config dump) with every secret leaf set to ``***``.

    The structure stays, so a reader still sees which options were given. Passwords in
    URLs (``scheme://user:password@host``) are redacted wherever they appear.
    """
    if isinstance(data, dict):
        return {k: redact(v, secret=secret or _is_secret_key(k)) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact(v, secret=secret) for v in data]
    if secret and data is not None and data != "":
        return REDACTED
    if isinstance(data, str):
        return _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", data)
    return data


def secret_values(data: Any, *, secret: bool = False) -> set[str]:
    """The secret strings of a config mapping (as :func:`redact` would hide them)."""
    if isinstance(data, dict):
        found: set[str] = set()
        for k, v in data.items():
            found |= secret_values(v, secret=secret or _is_secret_key(k))
        return found
    if isinstance(data, list | tuple):
        return set().union(*(secret_values(v, secret=secret) for v in data))
    text = str(data) if secret and isinstance(data, str | int | float) else None
    found = {text} if text is not None and len(text) >= MIN_SECRET_CHARS else set()
    if isinstance(data, str):
        found |= {m.group("password") for m in _URL_PASSWORD.finditer(data)}
    return found


def remember(values: Iterable[str]) -> None:
    """Register secret values: :func:`scrub` and every log record hide them from now on."""
    fresh = {v for v in values if len(v) >= MIN_SECRET_CHARS}
    if fresh:
        _known.update(fresh)
        install_log_scrubber()


def scrub(text: str) -> str:
    """``text`` with every remembered secret and every URL password replaced by ``***``."""
    for value in sorted(_known, key=len, reverse=True):  # a secret may contain another
        text = text.replace(value, REDACTED)
    return _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", text)


def install_log_scrubber() -> None:
    """Scrub every log record of this process as it is created (idempotent).

    A record factory sees the records of every logger (Prefect's, MLflow's, Dask's) before
    any handler or filter, so no handler can write a secret; tracebacks are scrubbed too.
    """
    factory = logging.getLogRecordFactory()
    if getattr(factory, "melflow_scrubs", False):
        return

    def scrubbing_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            record.msg, record.args = scrub(record.getMessage()), None
        except (TypeError, ValueError):  # a malformed record: logging reports it when emitted
            return record
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return record

    scrubbing_factory.melflow_scrubs = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(scrubbing_factory)
