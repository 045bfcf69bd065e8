"""One module per loader; each runs in its own process (`python -m bench.loaders.NAME ...`).

Every loader takes the same arguments (see `_child.parse_args`), writes `{out}/...` and prints one
`BENCH_RESULT {json}` line last on stdout: its timed section, the rows it wrote and where.
"""
