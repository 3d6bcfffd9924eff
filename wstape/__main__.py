"""``python -m wstape``: the same as the ``wstape`` command."""

from wstape.cli.app import main

if __name__ == "__main__":
    main()
