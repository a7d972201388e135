"""One module per command, each a one-command typer app named `app`; cli/group.py loads them on demand."""
