"""Log a cross-validation: a parent run with one nested run per fold; nothing registered."""

from __future__ import annotations

from pathlib import Path

import mlflow

from melflow.config import PipelineConfig
from melflow.cv import CvResult
from melflow.lineage import flatten, git_commit
from melflow.registry.names import GIT_COMMIT_TAG
from melflow.registry.register import log_artifacts
from melflow.registry.session import experiment_id, logged_run, session

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
    with session(cfg) as client:
        experiment = experiment_id(client, cfg)
        found = logged_run(client, experiment, CV_DIGEST_TAG, digest)
        if found is not None:
            return found
        commit = git_commit()
        run_tags = {**tags, CV_DIGEST_TAG: digest, **({GIT_COMMIT_TAG: commit} if commit else {})}
        with mlflow.start_run(
            experiment_id=experiment, run_name=f"cv {cfg.name}", tags=run_tags
        ) as parent:
            mlflow.log_params(flatten(cfg.model_dump(mode="json")))
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
        return str(parent.info.run_id)
