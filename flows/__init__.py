"""Prefect flows and the command line: thin wrappers around the plain functions in `tasks/`."""
