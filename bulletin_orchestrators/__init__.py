"""Adapters that hand the bulletin source to an orchestrator (each behind its own optional extra).

`bulletin_orchestrators.dagster`: assets through dagster-dlt, one group per site, a daily schedule
and a change sensor (`uv sync --extra dagster`, then `dagster dev -m bulletin_orchestrators.dagster`).
"""
