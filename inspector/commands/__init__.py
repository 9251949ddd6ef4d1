"""Subcommands of the `inspector` CLI, one module each."""
