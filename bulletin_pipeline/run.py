"""Runnable pipeline script, as `dlt init` lays it out: `python bulletin_pipeline/run.py --help`."""

import os
import sys

if __package__ in (None, ""):
    # Run as a script, Python puts this folder first on sys.path, where our module names
    # (settings, source, pipeline...) would shadow top-level ones: use the repository root instead.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":  # digest worker processes import this module too: they must not run it
    try:
        from bulletin_pipeline.cli import main_and_exit
    except KeyboardInterrupt:  # Ctrl-C while the libraries load
        print("interrupted (SIGINT) before the run started: nothing was written", file=sys.stderr)
        raise SystemExit(130) from None
    main_and_exit()
