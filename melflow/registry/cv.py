"""Log a cross-validation: a parent run with one nested run per fold; nothing registered."""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from melflow.config import PipelineConfig
from melflow.cv import CvResult
from melflow.registry.parent import log_parent_run
from melflow.registry.register import log_artifacts

CV_DIGEST_TAG = "melflow.cv_digest"
CV_FOLD_TAG = "melflow.cv_fold"


def log_cv(*, cfg: PipelineConfig, result: CvResult, digest: str, tags: dict[str, str]) -> str:
    """Log a cross-validation as a parent run with one nested run per fold.

    Nothing is registered: CV measures a recipe, it never makes a version of the
    production model. The parent holds the config (params), ``accuracy_mean``/``_std``,
    ``macro_f1_mean``/``_std`` and the summed confusion matrix; each fold's run its test
    scores, sizes and report files. Idempotent: a CV already logged with the same
    ``digest`` returns that run's id.

    Returns
    -------
    str
        The parent run's id.
    """

    def body(client: MlflowClient, experiment: str, _run_id: str) -> None:
        mlflow.log_metrics({**result.summary(), "folds": float(len(result.folds))})
        mlflow.log_dict(
            {"classes": result.classes, "confusion_matrix": result.confusion},
            "reports/cv_confusion.json",
        )
        for fold in result.folds:
            with mlflow.start_run(
                experiment_id=experiment,
                run_name=f"fold {fold.score.fold}",
                nested=True,
                tags={CV_FOLD_TAG: fold.score.fold},
            ) as child:
                mlflow.log_metrics(
                    {
                        "accuracy": fold.score.accuracy,
                        "macro_f1": fold.score.macro_f1,
                        "epochs": float(fold.score.epochs),
                        "train_s": fold.score.train_s,
                        "n_train": float(fold.n_train),
                        "n_val": float(fold.n_val),
                        "n_test": float(fold.n_test),
                    }
                )
                reports = Path(fold.run_dir, "eval-test")
                files = [str(p) for p in sorted(reports.glob("*")) if p.is_file()]
                log_artifacts(client, child.info.run_id, files, cfg)

    return log_parent_run(
        cfg=cfg,
        name=f"cv {cfg.name}",
        digest_tag=CV_DIGEST_TAG,
        digest=digest,
        tags=tags,
        body=body,
    )
