"""Names the registry writes: aliases, artifact paths and tags (no MLflow import)."""

from __future__ import annotations

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
BUNDLE_ARTIFACT = "bundle"
PREDICTIONS_ARTIFACT = "predictions/predictions.csv"
BUNDLE_DIGEST_TAG = "melflow.bundle_digest"
EVAL_DIGEST_TAG = "melflow.eval_digest"
GIT_COMMIT_TAG = "melflow.git_commit"
PROMOTION_TAG = "melflow.promotion"
