"""MLflow tracking and model registry: log evaluated models, gate promotion, load champions.

The only package that imports MLflow, and only where it must (reading the local SQLite
store does not). Its modules, one job each:

- :mod:`~melflow.registry.location`: where the store is;
- :mod:`~melflow.registry.session`: a client session on it;
- :mod:`~melflow.registry.pyfunc`: the registered raw-audio pyfunc model;
- :mod:`~melflow.registry.register`: log and register an evaluated bundle;
- :mod:`~melflow.registry.lookup`: list, show, compare, load, download a bundle, through
  :mod:`~melflow.registry.reader` (the local SQLite store read directly, without MLflow);
- :mod:`~melflow.registry.gate`: the promotion gate and manual promotion;
- :mod:`~melflow.registry.cv`, :mod:`~melflow.registry.sweep`: log a cross-validation or
  an architecture sweep (nothing registered), both through
  :mod:`~melflow.registry.parent` (a parent run logged once, nested runs inside).

Every registered version is an MLflow *pyfunc* that takes raw audio and carries its
bundle plus a copy of the ``melflow`` package. Aliases: every new version becomes
``challenger``; ``champion`` moves only through :func:`promote_if_better` (gated) or
:func:`promote` (manual, with a reason).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names resolve on first use (PEP 562): a lookup (status, models list) on a local store
# loads no MLflow, and none loads the pyfunc, torch and the promotion statistics that
# registering needs.
_HOMES = {
    "PromotionDecision": "melflow.promotion",
    "CV_DIGEST_TAG": "melflow.registry.cv",
    "CV_FOLD_TAG": "melflow.registry.cv",
    "log_cv": "melflow.registry.cv",
    "ChampionRescore": "melflow.registry.gate",
    "promote": "melflow.registry.gate",
    "promote_if_better": "melflow.registry.gate",
    "VersionInfo": "melflow.registry.lookup",
    "champion_bundle": "melflow.registry.lookup",
    "champion_info": "melflow.registry.lookup",
    "compare": "melflow.registry.lookup",
    "download_bundle": "melflow.registry.lookup",
    "list_versions": "melflow.registry.lookup",
    "load_champion": "melflow.registry.lookup",
    "show": "melflow.registry.lookup",
    "CHALLENGER": "melflow.registry.names",
    "CHAMPION": "melflow.registry.names",
    "DatasetInput": "melflow.registry.register",
    "RegisteredModel": "melflow.registry.register",
    "log_and_register": "melflow.registry.register",
    "artifact_root": "melflow.registry.location",
    "tracking_uri": "melflow.registry.location",
    "SWEEP_DIGEST_TAG": "melflow.registry.sweep",
    "SWEEP_POINT_TAG": "melflow.registry.sweep",
    "log_sweep": "melflow.registry.sweep",
}

if TYPE_CHECKING:
    from melflow.promotion import PromotionDecision
    from melflow.registry.cv import CV_DIGEST_TAG, CV_FOLD_TAG, log_cv
    from melflow.registry.gate import ChampionRescore, promote, promote_if_better
    from melflow.registry.location import artifact_root, tracking_uri
    from melflow.registry.lookup import (
        VersionInfo,
        champion_bundle,
        champion_info,
        compare,
        download_bundle,
        list_versions,
        load_champion,
        show,
    )
    from melflow.registry.names import CHALLENGER, CHAMPION
    from melflow.registry.register import DatasetInput, RegisteredModel, log_and_register
    from melflow.registry.sweep import SWEEP_DIGEST_TAG, SWEEP_POINT_TAG, log_sweep


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "CV_DIGEST_TAG",
    "CV_FOLD_TAG",
    "SWEEP_DIGEST_TAG",
    "SWEEP_POINT_TAG",
    "ChampionRescore",
    "DatasetInput",
    "PromotionDecision",
    "RegisteredModel",
    "VersionInfo",
    "artifact_root",
    "champion_bundle",
    "champion_info",
    "compare",
    "download_bundle",
    "list_versions",
    "load_champion",
    "log_and_register",
    "log_cv",
    "log_sweep",
    "promote",
    "promote_if_better",
    "show",
    "tracking_uri",
]
