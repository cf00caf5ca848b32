"""Feature extraction as a cached Prefect task; the Dask cluster starts only if work remains."""

from __future__ import annotations

from melflow.features.extract import EXTRACT
from melflow.tasks.stores import store_task

extract_task = store_task(EXTRACT)
