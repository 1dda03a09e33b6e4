"""A folder to a committed index: the indexer, its engines, shards, watch mode."""
