"""How melflow's flow runs look in Prefect: names, parameters, tags, log lines, summaries.

- A flow run is named after what it does and for which profile (``run/small``) and is
  tagged ``melflow``, ``profile:<name>`` and ``stage:<last stage>``; its task runs carry
  the same tags, so the UI filters a profile's runs or a stage's tasks in one click.
- A :class:`~melflow.config.PipelineConfig` parameter is recorded as its profile name and
  digest, never in full: the config can hold storage credentials and runs to a hundred
  fields, while the digest is what the cache keys and MLflow runs refer to.
- melflow's own log lines (``melflow.*`` at INFO) are sent to the run's log in the API
  even when the terminal is quiet; the terminal keeps showing exactly what it showed before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from prefect import Flow, tags
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

from melflow.config import PipelineConfig
from melflow.digest import digest_of

if TYPE_CHECKING:
    from melflow.flows.summary import PipelineSummary

P = ParamSpec("P")
R = TypeVar("R")
MELFLOW_LOGGER = "melflow"
PREFECT_RUN_TAG = "melflow.prefect.flow_run_id"  # MLflow run tag: the flow run that made it


def config_parameter(cfg: PipelineConfig) -> dict[str, str]:
    """What a flow run records of its config: the profile and the digest of all its fields."""
    return {"profile": cfg.name, "digest": digest_of(cfg)}


class MelflowFlow(Flow[P, R]):
    """A Prefect flow that records config parameters by :func:`config_parameter`."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        configs = {k: v for k, v in parameters.items() if isinstance(v, PipelineConfig)}
        rest = {k: v for k, v in parameters.items() if k not in configs}
        return {
            **super().serialize_parameters(rest),
            **{k: config_parameter(v) for k, v in configs.items()},
        }


def run_tags(cfg: PipelineConfig, stage: str) -> list[str]:
    """The tags of a run of ``cfg`` that goes up to ``stage``."""
    return ["melflow", f"profile:{cfg.name}", f"stage:{stage}"]


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) from free text."""
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


class _InRun(logging.Filter):
    """Only records logged inside a flow or task run: the API handler needs the run's id
    (a record from a helper thread would otherwise end as a warning on the terminal)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return FlowRunContext.get() is not None or TaskRunContext.get() is not None


class _AsBefore(logging.Handler):
    """Hands a record to the root logger's handlers, as propagation would have."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)


@contextmanager
def melflow_logs_to_prefect() -> Iterator[None]:
    """Send ``melflow.*`` INFO lines to the current run's log in the Prefect API.

    The terminal is unaffected: records below the level that reached it before go only
    to the API. Nested uses (a flow calling a flow) attach one handler, not two.
    """
    logger = logging.getLogger(MELFLOW_LOGGER)
    if any(isinstance(h, APILogHandler) for h in logger.handlers):
        yield
        return
    saved = (logger.level, logger.propagate)
    api = APILogHandler(level=logging.INFO)
    api.addFilter(_InRun())
    terminal = _AsBefore(level=logger.getEffectiveLevel())
    logger.setLevel(min(logging.INFO, logger.getEffectiveLevel()))
    logger.propagate = False
    logger.addHandler(api)
    logger.addHandler(terminal)
    try:
        yield
    finally:
        api.flush()  # before the run ends, so its log is complete when it shows as finished
        logger.removeHandler(api)
        logger.removeHandler(terminal)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _tag_flow_run(names: list[str]) -> None:
    """Add ``names`` to the running flow run's tags (they are fixed when it is created)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    merged = sorted({*context.flow_run.tags, *names})
    context.client.update_flow_run(context.flow_run.id, tags=merged)
    context.flow_run.tags = merged


@contextmanager
def observed_run(cfg: PipelineConfig, stage: str) -> Iterator[None]:
    """Inside a flow: tag its run and the task runs it starts, and ship melflow's logs."""
    names = run_tags(cfg, stage)
    _tag_flow_run(names)
    with ExitStack() as stack:
        stack.enter_context(tags(*names))
        stack.enter_context(melflow_logs_to_prefect())
        yield


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def summary_markdown(summary: PipelineSummary, *, title: str) -> str:
    """The run summary as markdown: one table row per stage, then its links (label -> URL,
    path or command) and the promotion decision."""
    lines = [
        f"# {title}",
        "",
        "| stage | status | time | numbers | output |",
        "|---|---|---:|---|---|",
    ]
    for row in summary.stages:
        numbers = ", ".join(f"{k} {v}" for k, v in row.numbers.items())
        status = "cached" if row.cached else "computed"
        cells = (row.stage, status, f"{row.seconds:.1f} s", numbers, row.output)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append("")
    for label, target in summary.links.items():
        shown = (
            f"[{target}]({target})" if target.startswith(("http://", "https://")) else f"`{target}`"
        )
        lines.append(f"- **{label}:** {shown}")
    if summary.decision is not None:
        lines.append(f"- **promotion:** {_cell(summary.decision.reason)}")
    return "\n".join(lines) + "\n"


def publish_summary(summary: PipelineSummary, *, cfg: PipelineConfig) -> None:
    """Attach :func:`summary_markdown` to the current flow run as artifact ``run-<profile>``
    (called inside a flow run only: :func:`melflow.flows.stage_runs.publish`)."""
    title = f"melflow run: {cfg.name}"
    create_markdown_artifact(
        markdown=summary_markdown(summary, title=title),
        key=artifact_key("run", cfg.name),
        description=title,
    )
