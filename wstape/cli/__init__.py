"""The ``wstape`` command line: thin typer commands over the library."""
