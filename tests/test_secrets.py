"""melflow.secrets: what counts as secret, and that config dumps, errors and logs hide it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from conftest import small_config

from melflow import secrets
from melflow.config import PipelineConfig, load_config
from melflow.errors import ConfigError
from melflow.lineage import flatten
from melflow.manifest import COLUMNS, normalize, read_manifest, write_manifest

SENTINEL = "s3cr3t-SENTINEL-value"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("key", True),
        ("aws_secret_access_key", True),
        ("secretAccessKey", True),
        ("apikey", True),
        ("session_token", True),
        ("password", True),
        ("endpoint_url", False),
        ("keyword", False),
        ("n_mels", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert secrets.is_secret_name(name) is secret


def test_redact_hides_storage_options_and_secret_fields_but_keeps_the_structure() -> None:
    data = {
        "paths": {
            "data_dir": "s3://b/data",
            "storage_options": {"key": "AKIA1", "client_kwargs": {"endpoint_url": "http://h:1"}},
        },
        "registry": {"tracking_uri": "http://alice:pw1234@mlflow:5000", "api_token": "t0k3n"},
        "audio": {"sr": 16000},
    }
    assert secrets.redact(data) == {
        "paths": {
            "data_dir": "s3://b/data",
            "storage_options": {"key": "***", "client_kwargs": {"endpoint_url": "***"}},
        },
        "registry": {"tracking_uri": "http://alice:***@mlflow:5000", "api_token": "***"},
        "audio": {"sr": 16000},
    }
    assert secrets.secret_values(data) == {"AKIA1", "http://h:1", "pw1234", "t0k3n"}


def _sentinel_config(tmp_path: Path, *extra: str) -> PipelineConfig:
    return small_config(
        tmp_path,
        f"paths.storage_options.secret={SENTINEL}",
        "paths.storage_options.key=AKIA-LOCAL",
        *extra,
    )


def test_config_json_dump_and_mlflow_params_never_hold_a_secret(tmp_path: Path) -> None:
    cfg = _sentinel_config(tmp_path)
    assert cfg.paths.storage_options["secret"] == SENTINEL  # the code still gets the value
    dumped = json.dumps(cfg.model_dump(mode="json"))
    assert SENTINEL not in dumped and "AKIA-LOCAL" not in dumped
    params = flatten(cfg.model_dump(mode="json"))
    assert params["paths.storage_options.secret"] == "***"
    assert cfg.model_dump()["paths"]["storage_options"]["secret"] == SENTINEL


def test_errors_and_log_records_are_scrubbed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _sentinel_config(tmp_path)  # loading remembers the values
    assert secrets.scrub(f"could not sign with {SENTINEL}!") == "could not sign with ***!"
    with caplog.at_level(logging.INFO):
        logging.getLogger("thirdparty.client").info("options %s", {"secret": SENTINEL})
        try:
            raise RuntimeError(f"bad credentials {SENTINEL}")
        except RuntimeError:
            logging.getLogger("thirdparty.store").exception("failed")
    assert SENTINEL not in caplog.text
    assert "{'secret': '***'}" in caplog.text
    with pytest.raises(ConfigError) as info:
        load_config("small", overrides=[f"paths.storage_options={SENTINEL}"])
    assert "paths.storage_options" in str(info.value) and SENTINEL not in str(info.value)


def test_storage_options_with_a_local_data_dir_are_ignored(tmp_path: Path) -> None:
    cfg = _sentinel_config(tmp_path)
    path = str(tmp_path / "m.parquet")
    empty = normalize(pd.DataFrame({column: [] for column in COLUMNS}))
    write_manifest(empty, path, storage_options=cfg.paths.storage_options)
    assert read_manifest(path, storage_options=cfg.paths.storage_options).empty


def test_a_process_that_receives_a_store_scrubs_its_credentials(tmp_path: Path) -> None:
    import pickle
    import subprocess
    import sys

    from melflow.features.store import RowStore

    secret = "SENTINEL-worker-7c1a"
    handle = RowStore("s3://bucket/store", storage_options={"key": "k", "secret": secret})
    (tmp_path / "store.pkl").write_bytes(pickle.dumps(handle))
    # A fresh process stands in for a Dask worker: it knows no secret until the handle lands.
    code = (
        "import logging, pickle, sys\n"
        "logging.basicConfig(stream=sys.stdout, format='%(message)s')\n"
        f"store = pickle.loads(open({str(tmp_path / 'store.pkl')!r}, 'rb').read())\n"
        "log = logging.getLogger('distributed.worker')\n"
        "log.error('Compute Failed: %s', store.storage_options)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout
    assert "'secret': '***'" in done.stdout
