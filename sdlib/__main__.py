"""``python -m sdlib``: the same entry point as the ``sdlib`` console script."""

from sdlib.cli import main

if __name__ == "__main__":
    main()
