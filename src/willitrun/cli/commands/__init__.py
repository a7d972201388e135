"""One module per command, each a one-command typer app named `app`; cli/app.py loads them on demand."""
