"""Benchmark of bulletin-pipeline against dlt's stock rest_api, the original design and a lower bound."""
