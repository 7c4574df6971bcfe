"""Typer command groups, one module each, joined in `churnctl.cli.main`."""
