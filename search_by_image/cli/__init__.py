"""Command lines: indexing (with duplicates and watch) and API keys."""
