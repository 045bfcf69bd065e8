import sys

if __name__ == "__main__":  # digest worker processes import this module too: they must not run it
    try:
        from .cli import main_and_exit
    except KeyboardInterrupt:  # Ctrl-C while the libraries load
        print("interrupted (SIGINT) before the run started: nothing was written", file=sys.stderr)
        raise SystemExit(130) from None
    main_and_exit()
