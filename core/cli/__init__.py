"""Command-line tools: ``python -m core.cli.precompute`` and ``python -m core.cli.train_demo``."""
