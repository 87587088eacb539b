"""Benchmarks that print figures; run each from the repo root as `.venv/bin/python -m bench.<name>`."""
