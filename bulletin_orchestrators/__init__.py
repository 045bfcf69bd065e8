"""Adapters that run bulletin-pipeline from orchestrators (Dagster, Prefect, Airflow); each needs its extra."""
