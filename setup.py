"""Package layout for setuptools (the rest of the metadata is in pyproject.toml).

The profiles in ``pipeline_config/`` ship inside the wheel as ``melflow.pipeline_config``,
so an installed melflow finds them (:func:`melflow.config.profile_dirs`). The flows and
tasks are installed as ``melflow.flows`` and ``melflow.tasks``: ``melflow/flows`` and
``melflow/tasks`` are links to the checkout's top-level ``flows/`` and ``tasks/``, so the
same names import in the checkout, and no generic top-level package is installed.
"""

from setuptools import find_namespace_packages, setup

# Folders of the checkout installed under another package name.
MAPPED = {"melflow.pipeline_config": "pipeline_config"}

packages = find_namespace_packages(include=["melflow", "melflow.*"])
packages = [p for p in packages if "__pycache__" not in p]

setup(
    packages=[*packages, *MAPPED],
    package_dir=MAPPED,
    package_data={"melflow.pipeline_config": ["*.yaml"], "": ["py.typed"]},
)
