"""Command-line tools: ``python -m core.cli.train_demo`` (the batch precompute is ``python -m core.precompute``)."""
