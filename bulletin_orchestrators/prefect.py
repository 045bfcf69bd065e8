"""Prefect: `bulletin_flow` runs the pipeline once per site, one task run each, and returns the summaries.

Retries are off (the pipeline retries HTTP itself, and a failed run keeps its cursor, so the next
scheduled run resumes). Sites run concurrently on the flow's task runner (threads by default); one
site's failure never stops another, and the flow fails naming the failed sites after the rest landed.

    prefect deploy / serve:  bulletin_flow.serve(name="bulletin-daily", cron="0 10 * * *")
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from prefect import flow, get_run_logger, task

from bulletin_orchestrators.summary import describe
from bulletin_pipeline import RunSummary, resolve_settings, run_pipeline
from bulletin_pipeline.errors import first_line

DEFAULT_SITE = "default"


class SitesFailed(Exception):
    """Some sites failed (their cursors stay); the others loaded."""


@task(name="bulletin-site", task_run_name="bulletin-{name}", retries=0)
def load_site(name: str, overrides: Mapping[str, Any]) -> RunSummary:
    """One run of the pipeline for one site: `overrides` are `resolve_settings` keywords."""
    summary = run_pipeline(resolve_settings(**overrides))
    get_run_logger().info(describe(name, summary))
    return summary


@flow(name="bulletin", retries=0)
def bulletin_flow(sites: Optional[Dict[str, Dict[str, Any]]] = None, if_changed: bool = True) -> Dict[str, RunSummary]:
    """Load every site (name -> `resolve_settings` keywords); without `sites`, one run from dlt config."""
    sites = sites or {DEFAULT_SITE: {}}
    names = list(sites)
    futures = load_site.map(names, [{"if_changed": if_changed, **sites[name]} for name in names])
    futures.wait()
    summaries: Dict[str, RunSummary] = {}
    failed: Dict[str, str] = {}
    for name, future in zip(names, futures, strict=True):
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            failed[name] = first_line(outcome)
        else:
            summaries[name] = outcome
    if failed:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in failed.items())
        raise SitesFailed(
            f"{len(failed)} of {len(names)} site(s) failed, their cursors stay ({reasons}); "
            f"loaded: {', '.join(summaries) or 'none'}"
        )
    return summaries
