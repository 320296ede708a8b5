"""Command line (typer + rich): `app.py` parses and delegates, `show.py` renders results."""
