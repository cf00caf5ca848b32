"""Offline augmentation as a cached Prefect task; the Dask cluster starts only if work remains."""

from __future__ import annotations

from melflow.augment.offline import AUGMENT
from melflow.tasks.stores import store_task

augment_task = store_task(AUGMENT)
