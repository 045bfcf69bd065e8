"""Adapters that run bulletin-pipeline from orchestrators (Dagster, Prefect, Airflow); each needs its extra.

`bulletin_orchestrators.dagster`: assets through dagster-dlt, one group per site, a daily schedule
and a change sensor (`uv sync --extra dagster`, then `dagster dev -m bulletin_orchestrators.dagster`).
"""
