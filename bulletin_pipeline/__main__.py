if __name__ == "__main__":  # digest worker processes import this module too: they must not run it
    from .cli import main_and_exit

    main_and_exit()
