"""One log line per run summary, shared by the orchestrator adapters."""

from __future__ import annotations

from bulletin_pipeline.pipeline import RunSummary
from bulletin_pipeline.redact import redact_url


def describe(site: str, summary: RunSummary) -> str:
    endpoints = "; ".join(
        f"{e.endpoint}: {e.loaded} loaded, {e.rejected} rejected, cursor {e.cursor_after or '-'}"
        + (f" (skipped: {summary.skipped[e.endpoint]})" if e.endpoint in summary.skipped else "")
        for e in summary.endpoints
    )
    where = f"{redact_url(summary.dataset_path)}/<endpoint>/{summary.partition}/" if summary.load_id else "nothing new"
    totals = f"{summary.loaded} records loaded, {summary.rejected} rejected in {summary.seconds:.1f}s"
    return f"{site}: {totals} ({endpoints}); {where}"
