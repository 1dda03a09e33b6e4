"""Ordering and labelling results: local-feature verification, expansion, turns, duplicates."""
