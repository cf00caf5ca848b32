"""Names the registry writes: aliases, artifact paths and tags (no MLflow import)."""

from __future__ import annotations

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
BUNDLE_ARTIFACT = "bundle"
PREDICTIONS_ARTIFACT = "predictions/predictions.csv"
BUNDLE_DIGEST_TAG = "melflow.bundle_digest"
EVAL_DIGEST_TAG = "melflow.eval_digest"
# MLflow's own tag: its UI shows the commit beside the run's source.
GIT_COMMIT_TAG = "mlflow.source.git.commit"
# Where a model's data came from (profile, manifest, feature store...): melflow.lineage.<key>.
LINEAGE_TAG_PREFIX = "melflow.lineage."
# The stage that a registered model's run records (its name is <profile>/<stage>/<digest8>).
RUN_STAGE = "train"
PROMOTION_TAG = "melflow.promotion"
