"""One error hierarchy for melflow, so callers can catch everything with ``MelflowError``."""


class MelflowError(Exception):
    """Base class of every error melflow raises on purpose."""


class ConfigError(MelflowError):
    """A configuration value is invalid; the message names the field and the fix."""


class ParameterError(MelflowError):
    """A function argument is out of its valid range (shapes, rates, sizes)."""


class AudioError(MelflowError):
    """An audio file cannot be used; ``reason`` is the short quarantine code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class StoreError(MelflowError):
    """A feature store is missing, incomplete or belongs to another configuration."""


class RunLockedError(MelflowError):
    """Another run holds the data folder's run lock (and the caller chose not to wait)."""
