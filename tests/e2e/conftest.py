"""End-to-end tests: the CLI in process, against built-in sandbox orgs (see cliharness.py)."""
